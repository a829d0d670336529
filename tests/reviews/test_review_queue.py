"""The review queue: priority by risk then age, age against the service level, expiring claims,
four-eyes, and who may do what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from caseloop.accounts.models import Role
from caseloop.accounts.permissions import Actor
from tests.factories import make_actor, make_claims_workflow, make_member
from workflows.models import Decision, DecisionStatus
from workflows.selectors import pending_reviews, review_queue
from workflows.services import review_claim_next, review_release, review_submit

pytestmark = pytest.mark.django_db

LARGE_APPROVAL = {
    "name": "large approval",
    "when": "decision == 'approve' and arguments.amount > 10000",
    "level": "high",
}


def _age(decision: Decision, hours: float) -> None:
    Decision.objects.filter(pk=decision.pk).update(
        review_requested_at=timezone.now() - timedelta(hours=hours)
    )


def test_queue_puts_higher_risk_first_then_older_and_flags_overdue_items(claims):
    claims.settings(risk_rules=[LARGE_APPROVAL], service_level_hours=4, four_eyes_level="off")
    old_small = claims.decide(amount=2_000)
    new_small = claims.decide(amount=3_000)
    large = claims.decide(amount=50_000)
    _age(old_small, 5)
    _age(new_small, 1)
    _age(large, 0.5)
    items = review_queue(actor=claims.admin, workflow=claims.workflow)
    assert [item.decision.pk for item in items] == [large.pk, old_small.pk, new_small.pk]
    assert [item.risk_level for item in items] == ["high", "none", "none"]
    assert [item.overdue for item in items] == [False, True, False]
    assert items[1].age > timedelta(hours=5) and items[1].service_level_hours == 4
    assert items[1].due_at == items[1].decision.review_requested_at + timedelta(hours=4)
    # A reviewer is handed the same order.
    reviewer = claims.member()
    assert review_claim_next(actor=reviewer).pk == large.pk


def test_a_claim_is_held_until_it_expires_then_returns_to_the_queue(claims):
    decision = claims.decide()
    first, second = claims.member(), claims.member()
    assert review_claim_next(actor=first).pk == decision.pk
    assert review_claim_next(actor=first).pk == decision.pk  # the claim it holds comes back
    assert review_claim_next(actor=second) is None
    (item,) = review_queue(actor=claims.admin)
    assert item.claim_active and item.claimed_by_id == first.user.pk
    with pytest.raises(PermissionDenied, match="claimed by another reviewer"):
        review_submit(actor=second, decision=decision, verdict="approve")

    Decision.objects.filter(pk=decision.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    (item,) = review_queue(actor=claims.admin)
    assert not item.claim_active and item.claimed_by_id is None
    assert review_claim_next(actor=second).pk == decision.pk
    with pytest.raises(PermissionDenied, match="claimed by another reviewer"):
        review_submit(actor=first, decision=decision, verdict="approve")
    review_submit(actor=second, decision=decision, verdict="approve")
    decision.refresh_from_db()
    assert decision.status == DecisionStatus.EXECUTED and decision.claimed_by is None


def test_a_released_claim_goes_back_to_the_queue(claims):
    decision = claims.decide()
    first, second = claims.member(), claims.member()
    review_claim_next(actor=first)
    review_release(actor=first, decision=decision)
    assert review_claim_next(actor=second).pk == decision.pk


def test_submitting_needs_a_claim_unless_you_are_an_admin(claims):
    decision = claims.decide()
    reviewer = claims.member()
    with pytest.raises(PermissionDenied, match="claim decision"):
        review_submit(actor=reviewer, decision=decision, verdict="approve")
    review_submit(actor=claims.admin, decision=decision, verdict="approve")
    assert Decision.objects.get(pk=decision.pk).status == DecisionStatus.EXECUTED


def test_four_eyes_needs_two_approvals_from_different_reviewers(claims):
    claims.settings(risk_rules=[LARGE_APPROVAL], four_eyes_level="high")
    decision = claims.decide(amount=50_000)
    assert decision.approvals_required == 2
    first, second = claims.member(), claims.member()

    assert review_claim_next(actor=first).pk == decision.pk
    review_submit(actor=first, decision=decision, verdict="approve")
    decision.refresh_from_db()
    assert decision.status == DecisionStatus.PENDING_REVIEW and decision.claimed_by is None
    (item,) = review_queue(actor=claims.admin)
    assert (item.approvals, item.approvals_required) == (1, 2)
    # The first reviewer is not handed it again, and cannot approve it twice.
    assert review_claim_next(actor=first) is None
    with pytest.raises(PermissionDenied):
        review_submit(actor=first, decision=decision, verdict="approve")

    assert review_claim_next(actor=second).pk == decision.pk
    review_submit(actor=second, decision=decision, verdict="approve")
    decision.refresh_from_db()
    assert decision.status == DecisionStatus.EXECUTED
    assert decision.reviews.filter(verdict="approve").count() == 2


def test_the_same_admin_cannot_be_both_pairs_of_eyes(claims):
    claims.settings(risk_rules=[LARGE_APPROVAL], four_eyes_level="medium")
    decision = claims.decide(amount=50_000)
    review_submit(actor=claims.admin, decision=decision, verdict="approve")
    with pytest.raises(ValidationError, match="must come from a different reviewer"):
        review_submit(actor=claims.admin, decision=decision, verdict="approve")
    assert Decision.objects.get(pk=decision.pk).status == DecisionStatus.PENDING_REVIEW


def test_below_the_four_eyes_level_one_approval_is_enough(claims):
    claims.settings(risk_rules=[LARGE_APPROVAL], four_eyes_level="critical")
    decision = claims.decide(amount=50_000)
    assert decision.approvals_required == 1
    claims.approve(decision)
    assert Decision.objects.get(pk=decision.pk).status == DecisionStatus.EXECUTED


def test_auditors_and_experts_see_the_queue_but_cannot_review(claims):
    decision = claims.decide()
    for role in (Role.AUDITOR, Role.EXPERT):
        actor = claims.member(role)
        assert [item.decision.pk for item in review_queue(actor=actor)] == [decision.pk]
        with pytest.raises(PermissionDenied):
            review_claim_next(actor=actor)
        with pytest.raises(PermissionDenied):
            review_submit(actor=actor, decision=decision, verdict="approve")
    assert Decision.objects.get(pk=decision.pk).status == DecisionStatus.PENDING_REVIEW


def test_reviewers_of_another_organisation_never_see_or_review_its_decisions(claims):
    decision = claims.decide()
    other_admin = make_actor(role=Role.ADMIN)
    make_claims_workflow(other_admin)
    outsider = Actor(
        organization=other_admin.organization,
        user=make_member(other_admin.organization, Role.REVIEWER),
        role=Role.REVIEWER,
    )
    assert review_claim_next(actor=outsider) is None
    assert not pending_reviews(actor=outsider).exists()
    with pytest.raises(PermissionDenied):
        review_claim_next(actor=outsider, workflow=claims.workflow)
    with pytest.raises(PermissionDenied):
        review_submit(actor=outsider, decision=decision, verdict="approve")
    assert not decision.reviews.exists()


def test_api_keys_cannot_give_verdicts(claims):
    from caseloop.accounts.models import ApiKey

    decision = claims.decide()
    key = ApiKey(organization=claims.admin.organization, prefix="abc", scopes=["reviews:write"])
    actor = Actor(organization=claims.admin.organization, api_key=key)
    with pytest.raises(PermissionDenied, match="given by people"):
        review_submit(actor=actor, decision=decision, verdict="approve")
