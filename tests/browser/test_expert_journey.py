"""An expert builds a rubric in the browser, sees the red team catch a weak one, fixes it and saves it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from caseloop.accounts.models import Role
from tests.factories import make_actor, make_claims_workflow, make_member, make_organization
from workflows.models import Rubric

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"expert-{name}.png"), full_page=True)


def _sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Workflows").wait_for()


def _row(page, criterion: str):
    return page.get_by_role("button", name=f"Edit criterion {criterion}", exact=True)


def _add_criterion(page, *, name: str, kind: str, weight: str, **params: str) -> None:
    editor = page.locator("#editor")
    details = editor.locator("details.item-editor")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    form = editor.locator("#criteria-form")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Kind").select_option(kind)
    form.get_by_label("Weight").fill(weight)
    for label, value in params.items():
        field = form.locator(f"[data-kind='{kind}']").get_by_label(label.replace("_", " "), exact=True)
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    form.get_by_role("button", name="Add criterion").click()
    _row(page, name).wait_for()


def test_expert_builds_a_rubric_the_red_team_accepts(page, live_server):
    admin = make_actor(make_organization("Acme Insurance"))
    workflow, _ = make_claims_workflow(admin, cases=200)
    expert = make_member(admin.organization, Role.EXPERT)

    _sign_in(page, live_server, expert.username)
    page.get_by_role("link", name="Workflows").click()
    page.get_by_role("link", name="Auto claims").click()
    page.get_by_role("link", name="New rubric").click()
    page.get_by_label("Name").fill("Payout quality")
    page.get_by_label("One criterion: the right outcome").check()
    page.get_by_role("button", name="Create and edit").click()

    # The editor opens on the draft and scores it at once.
    page.get_by_role("heading", name="Edit rubric: Payout quality").wait_for()
    page.get_by_test_id("redteam-ok").or_(page.get_by_test_id("redteam-warning")).wait_for()

    # A weak rubric: a bonus for any approval, whatever the claim.
    _add_criterion(page, name="paid_out", kind="expression", weight="3", Expression="decision == 'approve'")
    warning = page.get_by_test_id("redteam-warning")
    warning.wait_for()
    assert "Always approve" in warning.inner_text()
    assert "reward hacking pays" in warning.inner_text()
    _shot(page, "1-red-team-warning")

    # A criterion with a problem is shown beside it, by path, and not scored.
    _add_criterion(
        page, name="bad_payout", kind="numeric_tolerance", weight="1", Argument="reason_code", Relative="0.01"
    )
    problem = page.locator("tr.has-problem")
    problem.wait_for()
    assert "params.argument" in problem.inner_text()
    assert "not numeric" in page.locator("#criteria-form").inner_text()
    _shot(page, "2-inline-problem")

    # Fix it: drop the bad criterion and the approval bonus, pay for the right amount, gate on cover.
    page.get_by_role("button", name="Remove criterion bad_payout").click()
    _row(page, "bad_payout").wait_for(state="detached")
    page.get_by_role("button", name="Remove criterion paid_out").click()
    _row(page, "paid_out").wait_for(state="detached")
    _add_criterion(
        page, name="right_payout", kind="numeric_tolerance", weight="2", Argument="amount", Relative="0.01"
    )
    editor = page.locator("#editor")
    editor.locator("details.item-editor summary").click()
    form = editor.locator("#criteria-form")
    form.get_by_label("Name", exact=True).fill("no_payment_without_cover")
    form.get_by_label("Kind").select_option("expression")
    form.get_by_label("Weight").fill("0")
    form.get_by_label("Gate").check()
    form.get_by_label("When").fill("decision == 'approve'")
    form.locator("[data-kind='expression']").get_by_label("Expression").fill(
        "'check_coverage' in steps and check_coverage.in_force and check_coverage.peril_covered"
    )
    form.get_by_role("button", name="Add criterion").click()
    _row(page, "no_payment_without_cover").wait_for()
    ok = page.get_by_test_id("redteam-ok")
    ok.wait_for()
    assert "No exploit policy reaches" in ok.inner_text()
    _shot(page, "3-red-team-passes")

    page.get_by_label("What changed").fill("Pay for the right amount; never pay without cover")
    page.get_by_role("button", name="Save as version 2").click()
    page.wait_for_url(re.compile(r"/rubrics/\d+/\?version=2$"))
    assert "Saved version 2 of rubric Payout quality" in page.locator(".messages").inner_text()
    _shot(page, "4-saved-version")

    rubric = Rubric.objects.get(workflow=workflow, name="Payout quality")
    latest = rubric.latest_version
    assert latest.number == 2
    assert [c["name"] for c in latest.definition["criteria"]] == [
        "right_outcome",
        "right_payout",
        "no_payment_without_cover",
    ]
    assert latest.definition["criteria"][2]["gate"] is True
    assert latest.note == "Pay for the right amount; never pay without cover"


def test_expert_adds_a_field_to_the_spec_and_reads_a_decision(page, live_server):
    from tests.factories import claims_fields, decide_live_case

    admin = make_actor(make_organization("Acme Insurance"))
    workflow, _ = make_claims_workflow(admin, cases=30)
    decision = decide_live_case(admin, workflow, claims_fields(workflow))
    expert = make_member(admin.organization, Role.EXPERT)

    _sign_in(page, live_server, expert.username)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/")
    page.get_by_role("link", name="Edit spec").first.click()
    section = page.locator("section#case_fields")
    section.locator("summary", has_text="Add a field").click()
    form = section.locator("#case_fields-form")
    form.get_by_label("Name", exact=True).fill("vin")
    form.get_by_label("Type").select_option("string")
    form.get_by_label("Required").uncheck()
    form.get_by_label("Max length").fill("17")
    form.get_by_label("Max length").press("Enter")  # Enter applies the item form it is in
    page.get_by_role("button", name="Edit field vin").wait_for()
    assert "Field 'vin' added." in page.locator("#editor-status").inner_text()

    # A tool form shows only the inputs of its kind.
    tools = page.locator("section#tools")
    tools.locator("summary", has_text="Add a tool").click()
    tool_form = tools.locator("#tools-form")
    tool_form.get_by_label("Kind").select_option("expression")
    assert tool_form.locator("[data-kind='expression']").is_visible()
    assert not tool_form.locator("[data-kind='lookup']").is_visible()
    _shot(page, "5-spec-editor")

    page.get_by_label("What changed").fill("Add the vehicle identification number")
    page.get_by_role("button", name="Save as version 2").click()
    page.wait_for_url(re.compile(r"/versions/2/$"))
    assert "vin" in page.locator("ul.changes").inner_text()
    _shot(page, "6-version-diff")
    assert workflow.latest_version.number == 2

    page.get_by_role("link", name="Cases").first.click()
    page.get_by_label("Search").fill(decision.case.fields["claimant"])
    page.get_by_label("Decision").select_option("yes")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name=f"#{decision.case_id}").wait_for()
    _shot(page, "7-case-list")
    page.get_by_role("link", name=decision.name).first.click()
    page.get_by_role("heading", name="Step by step").wait_for()
    assert page.locator("ol.timeline li.step").count() == decision.run.steps.count()
    _shot(page, "8-decision-detail")
