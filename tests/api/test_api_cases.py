"""Cases: one at a time (queued or decided in the request), in bulk (all or nothing), listed, read."""

from __future__ import annotations

import time

import pytest

from caseloop.audit.models import AuditEvent
from tests.api.conftest import assert_error, key_client
from tests.factories import live_case_fields
from workflows.models import Case, CaseStatus, Decision, DecisionStatus

pytestmark = pytest.mark.django_db

DENY_REASON = "not_covered"


def test_a_live_case_is_queued_for_the_decisions_workers_by_default(
    api, claims, django_capture_on_commit_callbacks
):
    workflow, _ = claims
    fields = live_case_fields(workflow)[0]
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(
            "/api/v1/cases",
            {"workflow": workflow.pk, "fields": fields, "external_id": "ext-1"},
            format="json",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["decision"] is None and body["source"] == "api"
    assert body["external_id"] == "ext-1" and body["split"] == "live"
    assert response["Location"] == f"/api/v1/cases/{body['id']}"
    assert len(callbacks) >= 1  # decide_case is queued on commit
    assert not Decision.objects.filter(case_id=body["id"]).exists()
    assert AuditEvent.objects.filter(verb="case.created", subject_id=str(body["id"])).count() == 1


def test_decide_sync_answers_with_the_decision(api, claims):
    workflow, _ = claims
    fields = live_case_fields(workflow)[0]
    response = api.post(
        "/api/v1/cases?decide=sync", {"workflow": workflow.pk, "fields": fields}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "decided"
    decision = body["decision"]
    assert decision["name"] in {"approve", "deny", "escalate"}
    assert decision["status"] == DecisionStatus.PENDING_REVIEW  # the rules policy is supervised
    assert decision["final"] is False
    stored = Decision.objects.get(case_id=body["id"])
    assert stored.pk == decision["id"] and stored.name == decision["name"]
    assert Case.objects.get(pk=body["id"]).status == CaseStatus.DECIDED


def test_decide_sync_without_a_production_policy_leaves_the_case_queued(admin, api):
    from tests.factories import make_claims_workflow

    workflow, _ = make_claims_workflow(admin, production_stage=None)
    fields = live_case_fields(workflow)[0]
    response = api.post(
        "/api/v1/cases?decide=sync", {"workflow": workflow.pk, "fields": fields}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued" and response.json()["decision"] is None


def test_unknown_decide_mode_is_refused(api, claims):
    workflow, _ = claims
    response = api.post(
        "/api/v1/cases?decide=later",
        {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]},
        format="json",
    )
    assert "decide" in assert_error(response, 400, "validation_error")


def test_a_labelled_case_with_expected_outcome(api, claims):
    workflow, _ = claims
    body = {
        "workflow": workflow.pk,
        "fields": live_case_fields(workflow)[0],
        "expected": {"decision": "deny", "arguments": {"reason_code": DENY_REASON}},
        "split": "train",
    }
    response = api.post("/api/v1/cases", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["expected"]["decision"] == "deny"
    assert response.json()["status"] == "new"  # only live cases are decided


def test_bulk_creates_all_cases_and_queues_them(api, claims):
    workflow, _ = claims
    items = [
        {"fields": f, "external_id": f"b-{i}"} for i, f in enumerate(live_case_fields(workflow, count=25))
    ]
    before = Case.objects.count()
    response = api.post("/api/v1/cases/bulk", {"workflow": workflow.pk, "cases": items}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()["cases"]
    assert [c["external_id"] for c in created] == [f"b-{i}" for i in range(25)]
    assert Case.objects.count() == before + 25
    assert {c["status"] for c in created} == {"queued"}


def test_bulk_is_all_or_nothing_with_errors_by_item_and_field(api, claims):
    workflow, _ = claims
    items = [{"fields": f} for f in live_case_fields(workflow, count=6)]
    items[2]["fields"] = dict(items[2]["fields"], amount_claimed="a lot")
    items[4] = {"fields": dict(items[4]["fields"]), "split": "sideways"}
    del items[5]["fields"]["policy_number"]
    before = Case.objects.count()
    audited = AuditEvent.objects.count()
    response = api.post("/api/v1/cases/bulk", {"workflow": workflow.pk, "cases": items}, format="json")
    errors = assert_error(response, 400, "validation_error")
    assert "cases[4].split" in errors, errors  # caught by the request's own validation
    assert Case.objects.count() == before and AuditEvent.objects.count() == audited
    items[4]["split"] = "live"
    response = api.post("/api/v1/cases/bulk", {"workflow": workflow.pk, "cases": items}, format="json")
    errors = assert_error(response, 400, "validation_error")
    assert set(errors) == {"cases[2].fields.amount_claimed", "cases[5].fields.policy_number"}, errors
    assert Case.objects.count() == before and AuditEvent.objects.count() == audited


def test_bulk_takes_at_most_1000_cases(api, claims):
    workflow, _ = claims
    item = {"fields": live_case_fields(workflow)[0]}
    response = api.post(
        "/api/v1/cases/bulk", {"workflow": workflow.pk, "cases": [item] * 1001}, format="json"
    )
    errors = assert_error(response, 400, "validation_error")
    assert "cases" in errors and "1000" in errors["cases"][0]
    response = api.post("/api/v1/cases/bulk", {"workflow": workflow.pk, "cases": []}, format="json")
    assert "cases" in assert_error(response, 400, "validation_error")


def test_list_filters_and_pagination(api, claims):
    workflow, _ = claims
    for i, fields in enumerate(live_case_fields(workflow, count=3)):
        api.post(
            "/api/v1/cases",
            {"workflow": workflow.pk, "fields": fields, "external_id": f"L{i}"},
            format="json",
        )
    live = api.get(f"/api/v1/cases?workflow={workflow.pk}&split=live").json()["results"]
    assert sorted(c["external_id"] for c in live) == ["L0", "L1", "L2"]
    assert [c["external_id"] for c in api.get("/api/v1/cases?external_id=L1").json()["results"]] == ["L1"]
    assert {c["source"] for c in api.get("/api/v1/cases?source=generated").json()["results"]} == {"generated"}
    train = Case.objects.filter(workflow=workflow, split="train").count()
    seen, url = [], "/api/v1/cases?split=train&limit=7"
    while url:
        page = api.get(url).json()
        assert len(page["results"]) <= 7
        seen += [c["id"] for c in page["results"]]
        url = page["next"]
    assert len(seen) == train == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    assert api.get("/api/v1/cases?created_after=2999-01-01T00:00:00Z").json()["results"] == []


def test_get_a_case_with_its_decision(api, claims):
    workflow, _ = claims
    created = api.post(
        "/api/v1/cases?decide=sync",
        {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]},
        format="json",
    ).json()
    got = api.get(f"/api/v1/cases/{created['id']}").json()
    assert got == created


def test_waiting_on_a_queued_case_times_out_with_its_current_state(api, claims):
    workflow, _ = claims
    created = api.post(
        "/api/v1/cases", {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]}, format="json"
    ).json()
    started = time.monotonic()
    got = api.get(f"/api/v1/cases/{created['id']}?wait=0.6")
    elapsed = time.monotonic() - started
    assert got.status_code == 200 and got.json()["status"] == "queued"
    assert 0.55 <= elapsed < 3


def test_a_reader_cannot_create_cases(admin, claims):
    workflow, _ = claims
    client = key_client(admin, ["cases:read"])
    response = client.post(
        "/api/v1/cases", {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]}, format="json"
    )
    assert_error(response, 403, "permission_denied")
    assert_error(
        client.post("/api/v1/cases/bulk", {"workflow": workflow.pk, "cases": []}, format="json"),
        403,
        "permission_denied",
    )


def test_when_deciding_in_the_request_fails_the_case_stays_queued_for_the_workers(api, claims, monkeypatch):
    from workflows.services import runs

    def broken(**kwargs):
        raise RuntimeError("the model is on fire")

    monkeypatch.setattr(runs, "run_policy", broken)
    workflow, _ = claims
    response = api.post(
        "/api/v1/cases?decide=sync",
        {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="on-fire",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["decision"] is None
    assert Case.objects.get(pk=body["id"]).status == CaseStatus.QUEUED
    assert AuditEvent.objects.filter(verb="case.created", subject_id=str(body["id"])).count() == 1
