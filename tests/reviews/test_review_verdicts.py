"""Verdicts: corrections are checked against the spec and execute the corrected outcome, and every
verdict becomes training signal — labelled train cases (source review) and negative labels."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from caseloop.audit.models import AuditEvent
from workflows.models import Case, CaseSource, Decision, DecisionStatus, ReviewOutcome, Split
from workflows.selectors import review_negative_labels
from workflows.services import decision_execute, review_claim_next, review_submit

pytestmark = pytest.mark.django_db

LARGE_APPROVAL = {
    "name": "large approval",
    "when": "decision == 'approve' and arguments.amount > 10000",
    "level": "high",
}


def _claimed(claims):
    reviewer = claims.member()
    decision = claims.decide()
    assert review_claim_next(actor=reviewer).pk == decision.pk
    return reviewer, decision


def test_a_correction_executes_the_corrected_outcome_and_becomes_a_labelled_train_case(claims):
    reviewer, decision = _claimed(claims)
    assert decision.name == "approve"
    review = review_submit(
        actor=reviewer,
        decision=decision,
        verdict="correct",
        corrected_decision="escalate",
        corrected_arguments={"reason": "fraud_suspected"},
        comment="fraud score 0.5 with two prior claims",
    )
    decision.refresh_from_db()
    corrected = {"decision": "escalate", "arguments": {"reason": "fraud_suspected"}}
    assert decision.status == DecisionStatus.EXECUTED and decision.review_outcome == ReviewOutcome.CORRECTED
    assert decision.outcome == corrected
    assert decision.name == "approve"  # what the policy proposed is kept as it was
    executed = AuditEvent.objects.get(verb="decision.executed", subject_id=str(decision.pk))
    assert executed.payload["outcome"] == corrected and executed.payload["from"] == DecisionStatus.CORRECTED

    label = review.labelled_case
    assert label is not None
    assert (label.source, label.split, label.expected) == (CaseSource.REVIEW, Split.TRAIN, corrected)
    assert label.fields == decision.case.fields and label.external_id == f"case:{decision.case_id}"
    assert label.workflow_id == claims.workflow.pk
    assert AuditEvent.objects.filter(verb="case.created", subject_id=str(label.pk)).exists()


def test_training_reads_review_cases_only_when_asked(claims):
    from training.services.jobs import training_cases

    reviewer, decision = _claimed(claims)
    review_submit(
        actor=reviewer,
        decision=decision,
        verdict="correct",
        corrected_decision="deny",
        corrected_arguments={"reason_code": "late_report"},
    )
    with_review = training_cases(claims.workflow, include_review_cases=True)
    without = training_cases(claims.workflow, include_review_cases=False)
    assert [c.expected.decision for c in with_review] == ["deny"]
    assert without == []


def test_an_approval_confirms_the_label(claims):
    reviewer, decision = _claimed(claims)
    review = review_submit(actor=reviewer, decision=decision, verdict="approve")
    decision.refresh_from_db()
    assert decision.review_outcome == ReviewOutcome.APPROVED and decision.status == DecisionStatus.EXECUTED
    assert review.labelled_case.expected == {"decision": decision.name, "arguments": decision.arguments}


def test_a_rejection_needs_a_reason_and_is_recorded_as_a_negative_label(claims):
    reviewer, decision = _claimed(claims)
    with pytest.raises(ValidationError) as exc:
        review_submit(actor=reviewer, decision=decision, verdict="reject", reason="  ")
    assert set(exc.value.message_dict) == {"reason"}
    review = review_submit(actor=reviewer, decision=decision, verdict="reject", reason="claim filed twice")
    decision.refresh_from_db()
    assert decision.status == DecisionStatus.REJECTED and review.labelled_case is None
    assert not Case.objects.filter(source=CaseSource.REVIEW).exists()
    (label,) = review_negative_labels(workflow=claims.workflow)
    assert label.reason == "claim filed twice" and label.review_id == review.pk
    assert label.outcome.decision == decision.name and label.case.fields == decision.case.fields
    event = AuditEvent.objects.get(verb="decision.rejected", subject_id=str(decision.pk))
    assert event.payload["reason"] == "claim filed twice"


@pytest.mark.parametrize(
    ("corrected_decision", "corrected_arguments", "field"),
    [
        (None, None, "corrected_decision"),
        ("pay", {}, "corrected_decision"),
        ("deny", {"reason_code": "bad_vibes"}, "corrected_arguments.reason_code"),
        ("approve", {"amount": -5}, "corrected_arguments.amount"),
        ("approve", {}, "corrected_arguments.amount"),
    ],
)
def test_a_correction_is_checked_against_the_spec_with_the_field_named(
    claims, corrected_decision, corrected_arguments, field
):
    reviewer, decision = _claimed(claims)
    with pytest.raises(ValidationError) as exc:
        review_submit(
            actor=reviewer,
            decision=decision,
            verdict="correct",
            corrected_decision=corrected_decision,
            corrected_arguments=corrected_arguments,
        )
    assert field in exc.value.message_dict
    assert Decision.objects.get(pk=decision.pk).status == DecisionStatus.PENDING_REVIEW
    assert not decision.reviews.exists()


def test_a_correction_that_changes_nothing_is_refused(claims):
    reviewer, decision = _claimed(claims)
    with pytest.raises(ValidationError, match="approve it instead"):
        review_submit(
            actor=reviewer,
            decision=decision,
            verdict="correct",
            corrected_decision=decision.name,
            corrected_arguments=decision.arguments,
        )


def test_an_unknown_verdict_or_a_stray_correction_is_refused(claims):
    reviewer, decision = _claimed(claims)
    with pytest.raises(ValidationError) as exc:
        review_submit(actor=reviewer, decision=decision, verdict="maybe")
    assert "verdict" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        review_submit(actor=reviewer, decision=decision, verdict="approve", corrected_decision="deny")
    assert "corrected_decision" in exc.value.message_dict


def test_a_risky_correction_needs_a_second_reviewer(claims):
    claims.settings(risk_rules=[LARGE_APPROVAL], four_eyes_level="high")
    reviewer, decision = _claimed(claims)
    review_submit(
        actor=reviewer,
        decision=decision,
        verdict="correct",
        corrected_decision="approve",
        corrected_arguments={"amount": 60_000},
    )
    decision.refresh_from_db()
    assert decision.status == DecisionStatus.PENDING_REVIEW
    assert (decision.review_round, decision.approvals_required) == (1, 2)
    assert decision.outcome == {"decision": "approve", "arguments": {"amount": 60_000}}
    assert review_claim_next(actor=reviewer) is None  # the corrector's own eyes already count
    second = claims.member()
    assert review_claim_next(actor=second).pk == decision.pk
    review_submit(actor=second, decision=decision, verdict="approve")
    decision.refresh_from_db()
    assert decision.status == DecisionStatus.EXECUTED and decision.review_outcome == ReviewOutcome.CORRECTED
    assert Case.objects.get(source=CaseSource.REVIEW).expected["arguments"]["amount"] == 60_000


def test_without_execution_on_approval_an_integration_executes_the_corrected_outcome(claims):
    claims.settings(execute_on_approval=False)
    reviewer, decision = _claimed(claims)
    review_submit(
        actor=reviewer,
        decision=decision,
        verdict="correct",
        corrected_decision="deny",
        corrected_arguments={"reason_code": "not_covered"},
    )
    decision.refresh_from_db()
    assert decision.status == DecisionStatus.CORRECTED and decision.executed_at is None
    decision_execute(actor=claims.admin, decision=decision)
    decision.refresh_from_db()
    assert decision.status == DecisionStatus.EXECUTED
    event = AuditEvent.objects.get(verb="decision.executed", subject_id=str(decision.pk))
    assert event.payload["outcome"] == {"decision": "deny", "arguments": {"reason_code": "not_covered"}}
