"""Each event fired by the real service that makes the change, delivered to a real receiver (eager):
decision.finalized, case.created (one and in bulk), training_job.finished, policy_version.promoted."""

from __future__ import annotations

import json

import pytest

from caseloop.accounts.models import Role
from caseloop.accounts.permissions import Actor
from caseloop.webhooks.models import EVENTS, WebhookDelivery
from caseloop.webhooks.services import webhook_create
from caseloop.webhooks.signing import verify_signature
from tests.factories import (
    approve_rules,
    claims_fields,
    decide_live_case,
    live_case_fields,
    make_actor,
    make_claims_workflow,
    make_member,
    make_rules_version,
)
from training.models import JobStatus, Stage
from training.services import policy_version_promote
from training.services.jobs import training_job_launch, training_job_run
from workflows.models import DecisionStatus
from workflows.services import case_create, case_generate, case_import, review_claim_next, review_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(receiver):
    """An admin, the claims workflow with its supervised expert rules, and a webhook for everything."""
    admin = make_actor(role=Role.ADMIN)
    workflow, version = make_claims_workflow(admin)
    webhook, secret = webhook_create(actor=admin, url=receiver.url, events=list(EVENTS))
    return admin, workflow, version, webhook, secret


def _received(receiver, secret, event: str) -> list[dict]:
    """Bodies of ``event`` the receiver got, each checked for a valid signature."""
    bodies = []
    for request in receiver.requests:
        assert verify_signature(secret, request.headers["Caseloop-Signature"], request.body)
        body = json.loads(request.body)
        assert request.headers["Caseloop-Event"] == body["event"]
        if body["event"] == event:
            bodies.append(body)
    return bodies


def _reviewer(admin: Actor) -> Actor:
    user = make_member(admin.organization, Role.REVIEWER)
    return Actor(organization=admin.organization, user=user, role=Role.REVIEWER)


def test_a_rejected_decision_is_finalized(org, receiver, django_capture_on_commit_callbacks):
    admin, workflow, version, _, secret = org
    with django_capture_on_commit_callbacks(execute=True):
        decision = decide_live_case(admin, workflow, claims_fields(workflow))
    assert decision.status == DecisionStatus.PENDING_REVIEW
    assert _received(receiver, secret, "decision.finalized") == []  # pending review is not final

    reviewer = _reviewer(admin)
    with django_capture_on_commit_callbacks(execute=True):
        claimed = review_claim_next(actor=reviewer, workflow=workflow)
        review_submit(
            actor=reviewer, decision=claimed, verdict="reject", reason="Policy lapsed before the loss"
        )

    (body,) = _received(receiver, secret, "decision.finalized")
    data = body["data"]
    assert data["decision"]["id"] == decision.pk
    assert data["decision"]["status"] == "rejected"
    assert data["decision"]["outcome"] is None
    assert data["decision"]["rejected_outcome"] == {
        "decision": decision.name,
        "arguments": decision.arguments,
    }
    assert data["decision"]["rejection_reason"] == "Policy lapsed before the loss"
    assert data["decision"]["review_outcome"] == "rejected"
    assert data["decision"]["policy_version"] == version.pk
    assert data["decision"]["finalized_by"] == {"kind": "user", "label": reviewer.user.username}
    assert data["case"] == {
        "id": decision.case_id,
        "external_id": decision.case.external_id,
        "workflow": {"id": workflow.pk, "slug": workflow.slug},
    }
    assert body["organization"]["id"] == admin.organization.pk


def test_an_approved_decision_is_finalized_once_when_executed(
    org, receiver, django_capture_on_commit_callbacks
):
    admin, workflow, _, _, secret = org
    decision = decide_live_case(admin, workflow, claims_fields(workflow))
    reviewer = _reviewer(admin)
    with django_capture_on_commit_callbacks(execute=True):
        claimed = review_claim_next(actor=reviewer, workflow=workflow)
        review_submit(actor=reviewer, decision=claimed, verdict="approve")

    (body,) = _received(receiver, secret, "decision.finalized")  # approved → executed: one event
    data = body["data"]["decision"]
    assert data["status"] == "executed"
    assert data["outcome"] == {"decision": decision.name, "arguments": decision.arguments}
    assert data["review_outcome"] == "approved"
    assert data["executed_at"] is not None and data["reviewed_at"] is not None


def test_case_create_emits_case_created_with_the_case(org, receiver, django_capture_on_commit_callbacks):
    admin, workflow, _, _, secret = org
    fields = live_case_fields(workflow)[0]
    with django_capture_on_commit_callbacks(execute=True):
        case = case_create(
            actor=admin, workflow=workflow, fields=fields, split="train", external_id="CLM-1", decide=False
        )
    (body,) = _received(receiver, secret, "case.created")
    assert body["data"]["case"]["id"] == case.pk
    assert body["data"]["case"]["external_id"] == "CLM-1"
    assert body["data"]["case"]["split"] == "train"
    assert body["data"]["case"]["workflow"] == {"id": workflow.pk, "slug": workflow.slug}
    assert body["data"]["case"]["fields"] == json.loads(json.dumps(case.fields))


def test_imported_and_generated_cases_emit_one_event_each(org, receiver, django_capture_on_commit_callbacks):
    admin, workflow, _, webhook, secret = org
    lines = [
        json.dumps({"fields": fields, "external_id": f"IMP-{i}"})
        for i, fields in enumerate(live_case_fields(workflow, count=3))
    ]
    with django_capture_on_commit_callbacks(execute=True):
        imported = case_import(actor=admin, workflow=workflow, text="\n".join(lines), fmt="jsonl")
    with django_capture_on_commit_callbacks(execute=True):
        generated = case_generate(actor=admin, workflow=workflow, count=4, seed=5)

    bodies = _received(receiver, secret, "case.created")
    assert sorted(b["data"]["case"]["id"] for b in bodies) == sorted(c.pk for c in imported + generated)
    assert {b["data"]["case"]["external_id"] for b in bodies} >= {"IMP-0", "IMP-1", "IMP-2"}
    assert len({b["id"] for b in bodies}) == 7  # one event id per case
    assert (
        WebhookDelivery.objects.filter(webhook=webhook, event="case.created", status="succeeded").count() == 7
    )


def test_a_promotion_emits_policy_version_promoted(org, receiver, django_capture_on_commit_callbacks):
    admin, workflow, _, _, secret = org

    candidate = make_rules_version(admin, workflow, config=approve_rules())
    with django_capture_on_commit_callbacks(execute=True):
        policy_version_promote(actor=admin, version=candidate, stage=Stage.SHADOW, reason="compare first")
    (body,) = _received(receiver, secret, "policy_version.promoted")
    data = body["data"]
    assert data["policy_version"]["id"] == candidate.pk
    assert data["policy_version"]["stage"] == "shadow"
    assert data["policy_version"]["previous_stage"] == "candidate"
    assert data["policy_version"]["workflow"] == {"id": workflow.pk, "slug": workflow.slug}
    assert data["reason"] == "compare first" and data["forced"] is False
    assert data["promoted_by"] == {"kind": "user", "label": admin.user.username}
    assert data["policy_version"]["promoted_at"] is not None


@pytest.mark.slow
def test_a_finished_training_job_emits_training_job_finished(receiver, django_capture_on_commit_callbacks):
    admin = make_actor(role=Role.ADMIN)
    workflow, _ = make_claims_workflow(admin, cases=60)
    _, secret = webhook_create(actor=admin, url=receiver.url, events=["training_job.finished"])
    tiny = {
        "ppo": {
            "total_updates": 1,
            "num_envs": 8,
            "rollout_steps": 8,
            "minibatches": 2,
            "fit_cases": 16,
            "checkpoint_every": 1,
            "hidden_size": 16,
        },
        "evaluate_limit": 5,
    }
    job = training_job_launch(actor=admin, workflow=workflow, config=tiny, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        finished = training_job_run(job_id=job.pk)
    assert finished.status == JobStatus.SUCCEEDED

    (body,) = _received(receiver, secret, "training_job.finished")
    data = body["data"]["training_job"]
    assert data["id"] == job.pk and data["status"] == "succeeded"
    assert data["result_version"]["id"] == finished.result_version_id
    assert data["result_version"]["stage"] == "candidate"
    assert data["workflow"]["id"] == workflow.pk and data["finished_at"] is not None
    assert data["error"] == ""
