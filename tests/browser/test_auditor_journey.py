"""An auditor reads the trail in the browser: filters, searches the agents' explanations, verifies
the chain and downloads exports that re-verify on their own."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from caseloop.accounts.models import Role
from caseloop.audit.export import verify_export_file
from caseloop.audit.models import AuditEvent
from tests.factories import claims_fields, decide_live_case, make_actor, make_claims_workflow, make_member

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"auditor-{name}.png"), full_page=True)


def test_auditor_filters_searches_verifies_the_chain_and_downloads_exports(page, live_server, tmp_path):
    admin = make_actor(role=Role.ADMIN)
    workflow, _ = make_claims_workflow(admin, cases=10)
    for index in range(3):
        decide_live_case(admin, workflow, claims_fields(workflow, index=index))
    auditor = make_member(admin.organization, Role.AUDITOR)
    organization = admin.organization
    total = AuditEvent.objects.filter(organization=organization).count()

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(auditor.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Audit").click()
    page.get_by_role("heading", name="Audit trail").wait_for()
    assert page.locator("tr[data-sequence]").first.get_attribute("data-sequence") == str(total)

    page.get_by_label("Verb").fill("agent.decided")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**verb=agent.decided**")
    rows = page.locator("tr[data-sequence]")
    assert rows.count() == 3
    assert set(rows.locator("td:nth-child(4)").all_inner_texts()) == {"agent.decided"}

    step = AuditEvent.objects.filter(verb="agent.decided").order_by("sequence").first()
    word = max(step.payload["explanation"].split(), key=len).strip(".,()")
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Search explanations").fill(word)
    page.keyboard.press("Enter")
    page.wait_for_url("**q=**")
    assert page.locator(f'tr[data-sequence="{step.sequence}"]').is_visible()
    shot(page, "1-search")

    page.get_by_role("button", name="Verify chain").click()
    result = page.get_by_test_id("verify-result")
    result.wait_for()
    assert result.get_attribute("data-ok") == "true"
    assert f"{total} events re-hashed" in result.inner_text()
    shot(page, "2-verified")

    with page.expect_download() as download_info:
        page.get_by_test_id("export-jsonl").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".jsonl")
    jsonl = tmp_path / download.suggested_filename
    download.save_as(jsonl)
    verified = verify_export_file(jsonl)
    assert verified.ok, verified.first_break
    assert verified.checked == total and set(verified.heads) == {organization.pk}

    with page.expect_download() as download_info:
        page.get_by_test_id("export-csv").click()
    csv_file = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(csv_file)
    with open(csv_file, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == total + 1 and rows[-1]["verb"] == "chain_head"
    assert rows[-1]["hash"] == verified.heads[organization.pk][1]
