"""Decisions: list with filters, get, and the long-poll for a final state."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from caseloop.accounts.permissions import Actor
from tests.api.conftest import assert_error, key_client, make_autonomous
from tests.factories import decide_live_case, live_case_fields, make_claims_workflow
from workflows.models import Decision, DecisionStatus

pytestmark = pytest.mark.django_db


def test_list_and_filter_decisions(admin, api, claims):
    workflow, version = claims
    first = decide_live_case(admin, workflow, live_case_fields(workflow, seed=1)[0])
    second = decide_live_case(admin, workflow, live_case_fields(workflow, seed=2)[0])
    listed = api.get("/api/v1/decisions").json()["results"]
    assert [d["id"] for d in listed] == [second.pk, first.pk]
    by_case = api.get(f"/api/v1/decisions?case={first.case_id}").json()["results"]
    assert [d["id"] for d in by_case] == [first.pk]
    pending = api.get("/api/v1/decisions?status=pending_review").json()["results"]
    assert {d["id"] for d in pending} == {first.pk, second.pk}
    assert api.get("/api/v1/decisions?status=executed").json()["results"] == []
    by_version = api.get(f"/api/v1/decisions?policy_version={version.pk}&workflow={workflow.pk}").json()
    assert len(by_version["results"]) == 2


def test_get_a_decision_with_its_explanation(admin, api, claims):
    workflow, _ = claims
    decision = decide_live_case(admin, workflow, live_case_fields(workflow)[0])
    body = api.get(f"/api/v1/decisions/{decision.pk}").json()
    assert body["id"] == decision.pk and body["case"] == decision.case_id
    assert body["explanation"]["text"] and body["status"] == "pending_review" and body["final"] is False


def test_an_autonomous_decision_is_final_at_once(admin, api):
    workflow, _ = make_claims_workflow(admin)
    make_autonomous(admin, workflow)
    response = api.post(
        "/api/v1/cases?decide=sync",
        {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]},
        format="json",
    )
    decision = response.json()["decision"]
    assert decision["status"] == "executed" and decision["final"] is True
    started = time.monotonic()
    assert api.get(f"/api/v1/decisions/{decision['id']}?wait=20").json()["final"] is True
    assert time.monotonic() - started < 1


def test_wait_times_out_with_the_current_state(admin, api, claims):
    workflow, _ = claims
    decision = decide_live_case(admin, workflow, live_case_fields(workflow)[0])
    started = time.monotonic()
    response = api.get(f"/api/v1/decisions/{decision.pk}?wait=0.5")
    assert response.status_code == 200 and response.json()["status"] == "pending_review"
    assert 0.45 <= time.monotonic() - started < 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_wait_answers_as_soon_as_a_reviewer_finalises_the_decision():
    from caseloop.accounts.models import Role
    from tests.factories import make_actor, make_organization
    from workflows.services import review_claim_next, review_submit

    admin = make_actor(make_organization(), Role.ADMIN)
    workflow, _ = make_claims_workflow(admin)
    decision = decide_live_case(admin, workflow, live_case_fields(workflow)[0])
    client = key_client(admin, ["decisions:read"])
    reviewer: Actor = make_actor(admin.organization, Role.REVIEWER)

    def review_later():
        try:
            time.sleep(0.8)
            claimed = review_claim_next(actor=reviewer)
            review_submit(actor=reviewer, decision=claimed, verdict="approve")
        finally:
            connection.close()

    thread = threading.Thread(target=review_later)
    thread.start()
    started = time.monotonic()
    response = client.get(f"/api/v1/decisions/{decision.pk}?wait=20")
    elapsed = time.monotonic() - started
    thread.join()
    body = response.json()
    assert body["final"] is True and body["status"] == DecisionStatus.EXECUTED, body
    assert 0.7 <= elapsed < 5
    assert Decision.objects.get(pk=decision.pk).status == DecisionStatus.EXECUTED


def test_execute_an_approved_decision_when_the_workflow_waits_for_confirmation(admin, api, claims):
    from workflows.services import review_claim_next, review_submit, workflow_review_settings_set

    workflow, _ = claims
    workflow_review_settings_set(actor=admin, workflow=workflow, execute_on_approval=False)
    decision = decide_live_case(admin, workflow, live_case_fields(workflow)[0])
    claimed = review_claim_next(actor=admin)
    review_submit(actor=admin, decision=claimed, verdict="approve")
    assert api.get(f"/api/v1/decisions/{decision.pk}").json()["status"] == "approved"
    response = api.post(f"/api/v1/decisions/{decision.pk}/execute")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "executed"
    reader = key_client(admin, ["decisions:read"])
    assert_error(reader.post(f"/api/v1/decisions/{decision.pk}/execute"), 403, "permission_denied")
