"""Per-workflow review settings: validated when saved, risk rules compiled against the spec with
the offending field named, changes audited; autonomy is promoted only on agreement with reviewers."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from tests.factories import approve_rules, make_rules_version
from training.models import PolicyVersion, Stage
from training.services import policy_version_promote
from workflows.review_settings import ReviewSettings
from workflows.selectors import policy_version_agreement, policy_version_agreement_series, review_settings_for
from workflows.services import review_claim_next, review_submit, workflow_review_settings_set

pytestmark = pytest.mark.django_db


def test_defaults_apply_until_a_workflow_sets_its_own(claims):
    assert review_settings_for(workflow=claims.workflow) == ReviewSettings()
    claims.settings(confidence_threshold=0.8, service_level_hours=2)
    claims.workflow.refresh_from_db()
    settings = review_settings_for(workflow=claims.workflow)
    assert (settings.confidence_threshold, settings.service_level_hours) == (0.8, 2.0)
    assert settings.agreement_window == ReviewSettings().agreement_window
    event = AuditEvent.objects.filter(verb="workflow.review_settings_changed").latest("sequence")
    assert event.payload["changed"] == {
        "confidence_threshold": {"from": 0.9, "to": 0.8},
        "service_level_hours": {"from": 24.0, "to": 2.0},
    }


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ([{"name": "fraud", "when": "fraud_scor.score > 0.5", "level": "high"}], "risk_rules[0].when"),
        ([{"name": "x", "when": "arguments.amount >", "level": "high"}], "risk_rules[0].when"),
        ([{"name": "x", "when": "__import__('os')", "level": "high"}], "risk_rules[0].when"),
        (
            [{"name": "ok", "when": "True", "level": "low"}, {"name": "x", "when": "True", "level": "huge"}],
            "risk_rules[1].level",
        ),
        ([{"when": "True", "level": "low"}], "risk_rules[0].name"),
        (
            [{"name": "a", "when": "True", "level": "low"}, {"name": "a", "when": "False", "level": "low"}],
            "risk_rules[1].name",
        ),
    ],
)
def test_a_bad_risk_rule_is_refused_with_the_field_named_and_nothing_saved(claims, rules, field):
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as exc:
        workflow_review_settings_set(actor=claims.admin, workflow=claims.workflow, risk_rules=rules)
    assert field in exc.value.message_dict
    claims.workflow.refresh_from_db()
    assert claims.workflow.review_settings == {}
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ({"agreement_threshold": -0.1}, "agreement_threshold"),
        ({"agreement_window": 0}, "agreement_window"),
        ({"four_eyes_level": "sometimes"}, "four_eyes_level"),
        ({"service_level_hours": 0}, "service_level_hours"),
        ({"claim_minutes": 0}, "claim_minutes"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(claims, changes, field):
    with pytest.raises(ValidationError) as exc:
        workflow_review_settings_set(actor=claims.admin, workflow=claims.workflow, **changes)
    assert set(exc.value.message_dict) == {field}


def test_reviewers_cannot_change_review_settings(claims):
    with pytest.raises(PermissionDenied):
        workflow_review_settings_set(
            actor=claims.member(Role.REVIEWER), workflow=claims.workflow, claim_minutes=5
        )
    workflow_review_settings_set(actor=claims.member(Role.EXPERT), workflow=claims.workflow, claim_minutes=5)


def _review(claims, decision, verdict: str) -> None:
    reviewer = claims.member()
    assert review_claim_next(actor=reviewer).pk == decision.pk
    if verdict == "correct":
        review_submit(
            actor=reviewer,
            decision=decision,
            verdict="correct",
            corrected_decision="deny",
            corrected_arguments={"reason_code": "not_covered"},
        )
    elif verdict == "reject":
        review_submit(actor=reviewer, decision=decision, verdict="reject", reason="wrong policy")
    else:
        review_submit(actor=reviewer, decision=decision, verdict="approve")


def test_promotion_to_autonomous_needs_agreement_over_the_last_n_reviews(claims):
    claims.settings(agreement_window=4, agreement_threshold=0.75)
    version = make_rules_version(
        claims.admin, claims.workflow, config=approve_rules(), stage=Stage.SUPERVISED
    )

    for verdict in ("approve", "approve", "correct"):
        _review(claims, claims.decide(), verdict)
    with pytest.raises(ValidationError) as exc:
        policy_version_promote(actor=claims.admin, version=version, stage=Stage.AUTONOMOUS)
    assert "it has 3 reviewed decision(s) and needs 4" in exc.value.message_dict["stage"][0]

    _review(claims, claims.decide(), "reject")
    assert policy_version_agreement(version, last_n=4) == (0.5, 4)
    with pytest.raises(ValidationError) as exc:
        policy_version_promote(actor=claims.admin, version=version, stage=Stage.AUTONOMOUS)
    message = exc.value.message_dict["stage"][0]
    assert "reviewers agreed with 50.0% of its last 4 reviewed decisions (2/4)" in message
    assert "at least 75.0% is needed" in message
    assert PolicyVersion.objects.get(pk=version.pk).stage == Stage.SUPERVISED
    assert not AuditEvent.objects.filter(
        verb="policy_version.promoted", subject_id=str(version.pk), payload__to="autonomous"
    ).exists()

    # Three more approvals: the last four (three approvals, a rejection) agree 75%, though all seven only 5/7.
    for _ in range(3):
        _review(claims, claims.decide(), "approve")
    assert policy_version_agreement(version, last_n=4) == (0.75, 4)
    assert policy_version_agreement(version) == (5 / 7, 7)
    policy_version_promote(actor=claims.admin, version=version, stage=Stage.AUTONOMOUS)
    assert PolicyVersion.objects.get(pk=version.pk).stage == Stage.AUTONOMOUS
    event = AuditEvent.objects.filter(verb="policy_version.promoted", subject_id=str(version.pk)).latest(
        "sequence"
    )
    assert event.payload["agreement"] == {"rate": 0.75, "reviewed": 4, "threshold": 0.75, "window": 4}

    (today,) = policy_version_agreement_series(version)
    assert (today.reviewed, today.agreed, round(today.rate, 3)) == (7, 5, 0.714)


def test_a_version_without_reviews_cannot_jump_to_autonomous(claims):
    version = make_rules_version(claims.admin, claims.workflow, config=approve_rules())
    with pytest.raises(ValidationError, match="it has 0 reviewed decision"):
        policy_version_promote(actor=claims.admin, version=version, stage=Stage.AUTONOMOUS)
