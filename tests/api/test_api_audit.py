"""The audit trail over the API: cursor-paginated events, the JSONL export, verification."""

from __future__ import annotations

import json

import pytest

from caseloop.accounts.models import Role
from caseloop.audit.export import verify_export
from caseloop.audit.models import AuditChainHead, AuditEvent
from tests.api.conftest import assert_error, member_client

pytestmark = pytest.mark.django_db


def test_events_page_through_the_whole_chain_newest_first(admin, api, claims):
    total = AuditEvent.objects.filter(organization=admin.organization).count()
    assert total > 10
    sequences, url = [], "/api/v1/audit/events?limit=4"
    while url:
        page = api.get(url)
        assert page.status_code == 200
        sequences += [e["sequence"] for e in page.json()["results"]]
        url = page.json()["next"]
    assert sequences == list(range(total, 0, -1))


def test_event_filters(admin, api, claims):
    workflow, _ = claims
    created = api.get("/api/v1/audit/events?verb=workflow.created").json()["results"]
    assert [e["subject_id"] for e in created] == [str(workflow.pk)]
    about = api.get(f"/api/v1/audit/events?subject_type=workflows.workflow&subject_id={workflow.pk}").json()
    assert {e["verb"] for e in about["results"]} >= {"workflow.created"}
    assert api.get("/api/v1/audit/events?since=2999-01-01T00:00:00Z").json()["results"] == []
    everything = api.get("/api/v1/audit/events?until=2999-01-01T00:00:00Z&limit=500").json()["results"]
    assert len(everything) == AuditEvent.objects.filter(organization=admin.organization).count()


def test_export_streams_a_verifiable_chain_ending_with_its_head(admin, api, claims):
    response = api.get("/api/v1/audit/export")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert "attachment" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    head = json.loads(lines[-1])["chain_head"]
    stored = AuditChainHead.objects.get(organization=admin.organization)
    assert (head["sequence"], head["hash"]) == (stored.sequence, stored.hash)
    assert len(lines) == stored.sequence + 1
    result = verify_export(lines)
    assert result.ok, result
    verified = api.get("/api/v1/audit/verify").json()
    assert verified["ok"] is True and verified["first_break"] is None
    assert verified["head"]["hash"] == head["hash"] and verified["head"]["sequence"] == head["sequence"]
    assert verified["checked"] == stored.sequence


def test_the_export_holds_only_the_callers_organisation(admin, api, other_admin):
    lines = b"".join(api.get("/api/v1/audit/export").streaming_content).decode().splitlines()
    organisations = {json.loads(line).get("organization_id") for line in lines[:-1]}
    assert organisations == {admin.organization.pk}


def test_auditors_read_the_trail_experts_do_not(admin):
    auditor = member_client(admin.organization, Role.AUDITOR)
    assert auditor.get("/api/v1/audit/verify").json()["ok"] is True
    expert = member_client(admin.organization, Role.EXPERT)
    for path in ("/api/v1/audit/events", "/api/v1/audit/export", "/api/v1/audit/verify"):
        assert_error(expert.get(path), 403, "permission_denied")
