"""The decision state machine: every allowed transition is audited with from/to, every other one is
refused with the decision and its status named, and a stale copy can never execute twice."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from training.models import Stage
from workflows.models import Decision, DecisionStatus
from workflows.services import decision_execute, decision_route, review_submit, run_policy
from workflows.services.decisions import TRANSITIONS

pytestmark = pytest.mark.django_db

S = DecisionStatus
ALL = list(S.values)


def _events(decision: Decision, verb: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb, subject_id=str(decision.pk)).order_by("sequence"))


def _decision_in(claims, status: str) -> Decision:
    """A real decision forced into ``status``: the refusals below must hold whatever led there."""
    case = claims.decide().case
    run = run_policy(policy_version=claims.version, case=case, seed=1)
    decision = run.decision
    Decision.objects.filter(pk=decision.pk).update(
        status=status, outcome={"decision": decision.name, "arguments": decision.arguments}
    )
    decision.refresh_from_db()
    return decision


def test_the_transition_table_is_the_documented_one():
    assert {k: set(v) for k, v in TRANSITIONS.items()} == {
        S.PROPOSED: {S.PENDING_REVIEW, S.EXECUTED, S.SHADOW},
        S.PENDING_REVIEW: {S.APPROVED, S.CORRECTED, S.REJECTED},
        S.APPROVED: {S.EXECUTED},
        S.CORRECTED: {S.EXECUTED},
        S.REJECTED: set(),
        S.EXECUTED: set(),
        S.SHADOW: set(),
    }


@pytest.mark.parametrize("status", [s for s in ALL if s != S.PROPOSED])
def test_only_a_proposed_decision_can_be_routed(claims, status):
    decision = _decision_in(claims, status)
    with pytest.raises(ValidationError) as exc:
        decision_route(decision=decision, stage=Stage.SUPERVISED)
    label = S(status).label.lower()
    assert exc.value.messages == [f"decision {decision.pk} is {label}; it cannot be sent to review"]
    assert Decision.objects.get(pk=decision.pk).status == status


@pytest.mark.parametrize("status", [s for s in ALL if s != S.PENDING_REVIEW])
def test_only_a_decision_pending_review_can_be_reviewed(claims, status):
    decision = _decision_in(claims, status)
    with pytest.raises(ValidationError) as exc:
        review_submit(actor=claims.admin, decision=decision, verdict="approve")
    label = S(status).label.lower()
    assert exc.value.messages == [f"decision {decision.pk} is {label}; it cannot be reviewed"]
    assert not decision.reviews.exists()


@pytest.mark.parametrize("status", [S.PENDING_REVIEW, S.REJECTED, S.EXECUTED, S.SHADOW])
def test_execution_is_refused_unless_approved_or_corrected(claims, status):
    decision = _decision_in(claims, status)
    with pytest.raises(ValidationError) as exc:
        decision_execute(actor=claims.admin, decision=decision)
    label = S(status).label.lower()
    assert exc.value.messages == [f"decision {decision.pk} is {label}; it cannot be executed"]
    assert Decision.objects.get(pk=decision.pk).status == status
    assert not _events(decision, "decision.executed")


def test_a_proposed_decision_is_executed_only_by_autonomy_routing(claims):
    decision = _decision_in(claims, S.PROPOSED)
    with pytest.raises(ValidationError, match="only its policy's autonomy routing"):
        decision_execute(actor=claims.admin, decision=decision)


@pytest.mark.parametrize("status", [S.APPROVED, S.CORRECTED])
def test_approved_and_corrected_decisions_execute_once_and_are_audited(claims, status):
    decision = _decision_in(claims, status)
    decision_execute(actor=claims.admin, decision=decision)
    stored = Decision.objects.get(pk=decision.pk)
    assert stored.status == S.EXECUTED and stored.executed_at is not None
    (event,) = _events(decision, "decision.executed")
    assert event.payload["from"] == status and event.payload["to"] == S.EXECUTED
    assert event.actor_ref == str(claims.admin.user.pk)
    with pytest.raises(ValidationError, match="is executed; it cannot be executed"):
        decision_execute(actor=claims.admin, decision=decision)


def test_a_stale_copy_cannot_execute_a_decision_twice(claims):
    """Compare-and-swap: the second copy still believes the decision is approved; the database
    says otherwise, and the update touches nothing."""
    decision = _decision_in(claims, S.APPROVED)
    first, second = Decision.objects.get(pk=decision.pk), Decision.objects.get(pk=decision.pk)
    decision_execute(actor=claims.admin, decision=first)
    assert second.status == S.APPROVED
    with pytest.raises(ValidationError) as exc:
        decision_execute(actor=claims.admin, decision=second)
    assert exc.value.messages == [f"decision {decision.pk} is executed; it cannot be executed"]
    assert len(_events(decision, "decision.executed")) == 1


def test_reviewers_cannot_execute_decisions_themselves(claims):
    decision = _decision_in(claims, S.APPROVED)
    with pytest.raises(PermissionDenied):
        decision_execute(actor=claims.member(Role.REVIEWER), decision=decision)


def test_routing_to_review_is_audited_with_from_to_and_the_policy_as_actor(claims):
    decision = claims.decide()
    assert decision.status == S.PENDING_REVIEW
    (event,) = _events(decision, "decision.pending_review")
    assert event.payload["from"] == S.PROPOSED and event.payload["to"] == S.PENDING_REVIEW
    assert event.actor_kind == "policy_version" and event.actor_ref == str(claims.version.pk)
    assert event.payload["routing"]["reason"] == "supervised: every decision is reviewed"


def test_a_rejected_decision_never_executes_even_when_approval_executes(claims):
    decision = claims.decide()
    reviewer = claims.member()
    from workflows.services import review_claim_next

    review_claim_next(actor=reviewer)
    review_submit(actor=reviewer, decision=decision, verdict="reject", reason="payout is wrong")
    decision.refresh_from_db()
    assert decision.status == S.REJECTED and decision.executed_at is None
    with pytest.raises(ValidationError, match="is rejected; it cannot be executed"):
        decision_execute(actor=claims.admin, decision=decision)
