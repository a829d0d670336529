"""Autonomy by stage: what a live decision does next depends on its version's stage, its confidence
and the workflow's risk rules; shadow versions decide too but never execute."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from caseloop.audit.models import AuditEvent
from tests.factories import approve_rules, make_rules_version
from training.models import Stage
from workflows.models import Decision, DecisionStatus
from workflows.selectors import review_queue, shadow_comparison
from workflows.services import decision_execute, review_claim_next, review_submit

pytestmark = pytest.mark.django_db

LARGE_APPROVAL = {
    "name": "large approval",
    "when": "decision == 'approve' and arguments.amount > 10000",
    "level": "high",
}


def test_autonomy_executes_a_confident_decision_no_risk_rule_flags(claims):
    claims.autonomous(confidence=0.97)
    claims.settings(confidence_threshold=0.95, risk_rules=[LARGE_APPROVAL])
    decision = claims.decide(amount=2_000)
    assert decision.status == DecisionStatus.EXECUTED
    assert decision.executed_at is not None and decision.outcome == {
        "decision": "approve",
        "arguments": {"amount": 2000.0},
    }
    assert decision.routing["reason"].startswith("autonomous: confidence 0.970 ≥ 0.950")
    assert AuditEvent.objects.filter(verb="decision.executed", subject_id=str(decision.pk)).count() == 1
    assert not review_queue(actor=claims.admin)


def test_autonomy_sends_a_decision_to_review_when_a_risk_rule_fires(claims):
    claims.autonomous(confidence=0.97)
    claims.settings(confidence_threshold=0.95, risk_rules=[LARGE_APPROVAL])
    decision = claims.decide(amount=50_000)
    assert decision.status == DecisionStatus.PENDING_REVIEW
    assert decision.routing["reason"] == "risk rule 'large approval' (high) fired"
    assert decision.risk_level == 3 and decision.approvals_required == 2  # high meets four-eyes by default
    assert [item.decision.pk for item in review_queue(actor=claims.admin)] == [decision.pk]


def test_autonomy_sends_a_low_confidence_decision_to_review(claims):
    claims.autonomous(confidence=0.80)
    claims.settings(confidence_threshold=0.95, risk_rules=[LARGE_APPROVAL])
    decision = claims.decide(amount=2_000)
    assert decision.status == DecisionStatus.PENDING_REVIEW
    assert decision.routing["reason"] == "confidence 0.800 is below the threshold 0.950"
    assert decision.risk_level == 0 and decision.approvals_required == 1


def test_a_risk_rule_over_revealed_tool_results_fires_on_what_the_run_saw(claims):
    claims.autonomous(confidence=0.99)
    # The first live claim's fraud score is 0.5: one rule fires, the other not.
    claims.settings(
        confidence_threshold=0.9,
        risk_rules=[
            {"name": "fraud", "when": "fraud_score.score >= 0.5", "level": "medium"},
            {"name": "very high fraud", "when": "fraud_score.score > 0.9", "level": "critical"},
        ],
    )
    decision = claims.decide(amount=2_000)
    assert decision.status == DecisionStatus.PENDING_REVIEW
    assert [rule["name"] for rule in decision.routing["risk"]["fired"]] == ["fraud"]
    assert decision.risk_level == 2 and decision.approvals_required == 1


def test_a_risk_rule_that_cannot_be_evaluated_counts_as_fired(claims):
    """The policy never called fraud_score, so the rule cannot show the claim is safe."""
    claims.settings(agreement_window=1, agreement_threshold=1.0)
    config = approve_rules(confidence=0.99, amount="1000")
    config["checks"] = ["lookup_policy"]
    version = make_rules_version(claims.admin, claims.workflow, config=config, stage=Stage.SUPERVISED)
    claims.approve(claims.decide())
    from training.services import policy_version_promote

    policy_version_promote(actor=claims.admin, version=version, stage=Stage.AUTONOMOUS)
    claims.settings(risk_rules=[{"name": "fraud", "when": "fraud_score.score >= 0.5", "level": "low"}])
    decision = claims.decide()
    assert decision.status == DecisionStatus.PENDING_REVIEW
    (fired,) = decision.routing["risk"]["fired"]
    assert "treated as fired" in fired["error"] and "fraud_score" in fired["error"]


def test_supervised_versions_send_even_confident_safe_decisions_to_review(claims):
    claims.settings(confidence_threshold=0.1)
    decision = claims.decide(amount=2_000)
    assert decision.policy_version.stage == Stage.SUPERVISED
    assert decision.status == DecisionStatus.PENDING_REVIEW


def test_shadow_versions_decide_live_cases_but_never_execute(claims):
    shadow_version = make_rules_version(
        claims.admin, claims.workflow, config=approve_rules(confidence=0.99, amount="1"), stage=Stage.SHADOW
    )
    production = claims.decide(amount=2_000)
    shadow = Decision.objects.get(case=production.case, policy_version=shadow_version)
    assert shadow.status == DecisionStatus.SHADOW
    assert AuditEvent.objects.filter(verb="decision.shadow", subject_id=str(shadow.pk)).exists()
    with pytest.raises(ValidationError, match="is shadow; it cannot be executed"):
        decision_execute(actor=claims.admin, decision=shadow)
    with pytest.raises(ValidationError, match="is shadow; it cannot be reviewed"):
        review_submit(actor=claims.admin, decision=shadow, verdict="approve")
    # Only the production decision reaches the queue.
    reviewer = claims.member()
    assert review_claim_next(actor=reviewer).pk == production.pk
    assert shadow_comparison(shadow_version).compared == 0  # nothing executed yet
    review_submit(actor=reviewer, decision=production, verdict="approve")
    comparison = shadow_comparison(shadow_version)
    assert (comparison.shadow_decisions, comparison.compared, comparison.agreed) == (1, 1, 0)
    assert comparison.disagreements[0]["shadow"] == {"decision": "approve", "arguments": {"amount": 1}}
    assert comparison.disagreements[0]["executed"]["decision"] == "approve"
    shadow.refresh_from_db()
    assert shadow.status == DecisionStatus.SHADOW and shadow.executed_at is None


def test_a_failing_shadow_version_costs_production_nothing(claims):
    shadow_version = make_rules_version(
        claims.admin, claims.workflow, config=approve_rules(), stage=Stage.SHADOW
    )
    from training.models import PolicyVersion

    PolicyVersion.objects.filter(pk=shadow_version.pk).update(config={"broken": True})
    production = claims.decide()
    assert production.status == DecisionStatus.PENDING_REVIEW
    assert not Decision.objects.filter(policy_version=shadow_version).exists()
    failed = AuditEvent.objects.get(verb="decision.shadow_failed", subject_id=str(production.case_id))
    assert failed.payload["policy_version"] == shadow_version.pk
