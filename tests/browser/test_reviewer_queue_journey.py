"""A reviewer works the review queue by keyboard alone: claim, approve, correct, reject, next."""

from __future__ import annotations

from pathlib import Path

import pytest

from caseloop.accounts.models import Role
from tests.factories import claims_fields, decide_live_case, make_actor, make_claims_workflow, make_member
from workflows.models import Decision, DecisionStatus, Review

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"reviewer-{name}.png"), full_page=True)


def sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")


def press_and_wait(page, key: str) -> None:
    """Press a shortcut that submits, and wait for the next page."""
    with page.expect_navigation():
        page.keyboard.press(key)


def test_reviewer_works_five_items_by_keyboard_including_a_correction(page, live_server):
    admin = make_actor(role=Role.ADMIN)
    workflow, _ = make_claims_workflow(admin)
    pending = [decide_live_case(admin, workflow, claims_fields(workflow, index=i)) for i in range(6)]
    assert all(d.status == DecisionStatus.PENDING_REVIEW for d in pending)
    reviewer = make_member(admin.organization, Role.REVIEWER)

    sign_in(page, live_server, reviewer.username)
    page.get_by_role("link", name="Reviews").click()
    page.get_by_role("heading", name="Review queue").wait_for()
    assert page.get_by_test_id("queue-size").inner_text() == "6 waiting"
    assert page.locator("kbd", has_text="n").first.is_visible()
    shot(page, "1-queue")

    press_and_wait(page, "n")  # claim the next item
    page.get_by_role("heading", name="Your verdict").wait_for()
    assert "0/1" in page.get_by_test_id("four-eyes").inner_text()
    shot(page, "2-item")

    seen = []

    def current() -> int:
        return int(page.url.rstrip("/").split("/")[-1])

    # 1 and 2: approve
    for _ in range(2):
        seen.append(("approve", current()))
        press_and_wait(page, "a")
        page.get_by_role("heading", name="Your verdict").wait_for()

    # 3: correct to an escalation, choosing the decision and its typed argument by keyboard
    seen.append(("correct", current()))
    page.keyboard.press("c")
    decision_select = page.get_by_label("Corrected decision")
    assert decision_select.evaluate("el => el === document.activeElement")
    page.keyboard.type("escalate")
    assert decision_select.input_value() == "escalate"
    reason_select = page.locator("#arg__escalate__reason")
    assert reason_select.is_visible() and not page.locator("#arg__approve__amount").is_visible()
    page.keyboard.press("Tab")
    assert reason_select.evaluate("el => el === document.activeElement")
    page.keyboard.type("high")
    assert reason_select.input_value() == "high_value"
    shot(page, "3-correction")
    press_and_wait(page, "Control+Enter")
    page.get_by_role("heading", name="Your verdict").wait_for()
    assert "Corrected: escalate reason=high_value" in page.locator(".messages").inner_text()

    # 4: reject with a reason
    seen.append(("reject", current()))
    page.keyboard.press("r")
    reason = page.get_by_role("textbox", name="Reason")
    assert reason.evaluate("el => el === document.activeElement")
    page.keyboard.type("The policy lapsed before the loss date.")
    press_and_wait(page, "Control+Enter")
    page.get_by_role("heading", name="Your verdict").wait_for()

    # 5: approve; the sixth item opens next
    seen.append(("approve", current()))
    press_and_wait(page, "a")
    page.get_by_role("heading", name="Your verdict").wait_for()
    shot(page, "4-sixth-item")

    assert len({pk for _, pk in seen}) == 5
    reviews = {r.decision_id: r for r in Review.objects.filter(reviewer=reviewer)}
    assert len(reviews) == 5
    for verdict, pk in seen:
        assert reviews[pk].verdict == verdict
        decision = Decision.objects.get(pk=pk)
        if verdict == "approve":
            assert decision.status in (DecisionStatus.APPROVED, DecisionStatus.EXECUTED)
        elif verdict == "correct":
            assert decision.outcome == {"decision": "escalate", "arguments": {"reason": "high_value"}}
            assert decision.review_outcome == "corrected"
        else:
            assert decision.status == DecisionStatus.REJECTED
            assert reviews[pk].reason == "The policy lapsed before the loss date."
    sixth = current()
    assert sixth not in {pk for _, pk in seen}
    assert Decision.objects.get(pk=sixth).claimed_by_id == reviewer.pk
