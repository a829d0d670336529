"""Human review: the queue's claims, reviewers' verdicts, four-eyes, and verdicts as training signal.

You are in the review room. A reviewer takes the next item with :func:`review_claim_next` (a
row lock with SKIP LOCKED picks it, so two reviewers never get the same item, and the claim
expires after the workflow's ``claim_minutes``, when the item returns to the queue), then gives
a verdict with :func:`review_submit`:

- approve: counts as one approval of the outcome under review; at the decision's required number
  of approvals from different reviewers (two at or above the four-eyes risk level) it is approved,
  labelled and, by default, executed;
- correct: replaces the outcome under review with the corrected decision and arguments (checked
  against the workflow spec) and starts a new review round in which the corrector's verdict is
  the first approval; when the corrected outcome's own risk needs four eyes, a second reviewer
  must approve it; then the decision is corrected, labelled and executed;
- reject: with a reason; final. The rejection (its Review row) is the negative label.

Approved and corrected decisions become labelled train cases (source review, the outcome as
expected, the fields copied, ``external_id`` ``case:<id>`` of the original), which training reads
when a job sets ``include_review_cases``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from caseloop.accounts.models import Role
from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.services import audit_record
from workflows.engine.errors import SpecError
from workflows.engine.spec import WorkflowSpec
from workflows.models import (
    Case,
    CaseSource,
    CaseStatus,
    Decision,
    DecisionStatus,
    Review,
    ReviewOutcome,
    Split,
    Workflow,
)
from workflows.review_settings import FOUR_EYES_OFF, ReviewSettings
from workflows.selectors import outcomes_agree, review_settings_for
from workflows.services.decisions import _transition, execute_reviewed, refusal, revealed_facts
from workflows.services.errors import validation_error_from

Verdict = Review.Verdict


def _reviewer(actor: Actor) -> Any:
    require(actor, "review.verdict")
    if actor.user is None:
        raise PermissionDenied("Reviews are given by people: sign in as a reviewer.")
    return actor.user


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


# --------------------------------------------------------------------------- settings


@transaction.atomic
def workflow_review_settings_set(
    *,
    actor: Actor,
    workflow: Workflow,
    confidence_threshold: float | None = None,
    risk_rules: list[Mapping[str, Any]] | None = None,
    four_eyes_level: str | None = None,
    agreement_threshold: float | None = None,
    agreement_window: int | None = None,
    service_level_hours: float | None = None,
    claim_minutes: int | None = None,
    execute_on_approval: bool | None = None,
) -> ReviewSettings:
    """Change some of a workflow's review settings (None leaves one as it is; ``four_eyes_level``
    "off" disables four-eyes). Risk rules are compiled against the workflow's current spec, so an
    error names the rule and the field: ``risk_rules[1].when``. Experts and admins only."""
    require(actor, "workflow.edit")
    require_same_org(actor, workflow)
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    changes = {
        key: value
        for key, value in {
            "confidence_threshold": confidence_threshold,
            "risk_rules": [dict(rule) if isinstance(rule, Mapping) else rule for rule in risk_rules]
            if isinstance(risk_rules, list)
            else risk_rules,
            "four_eyes_level": four_eyes_level,
            "agreement_threshold": agreement_threshold,
            "agreement_window": agreement_window,
            "service_level_hours": service_level_hours,
            "claim_minutes": claim_minutes,
            "execute_on_approval": execute_on_approval,
        }.items()
        if value is not None
    }
    before = review_settings_for(workflow=workflow).to_dict()
    version = workflow.latest_version
    spec = WorkflowSpec.from_dict(version.spec) if version is not None else None
    try:
        settings = ReviewSettings.from_dict({**before, **changes}, spec=spec)
    except SpecError as exc:
        raise validation_error_from(exc) from None
    after = settings.to_dict()
    workflow.review_settings = after
    workflow.save(update_fields=["review_settings"])
    audit_record(
        actor=actor,
        verb="workflow.review_settings_changed",
        subject=workflow,
        payload={
            "changed": {
                key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]
            }
        },
    )
    return settings


# --------------------------------------------------------------------------- claims


def _claimable(now: Any, user: Any) -> Q:
    return Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now) | Q(claimed_by=user)


@transaction.atomic
def review_claim_next(*, actor: Actor, workflow: Workflow | None = None) -> Decision | None:
    """Claim the queue's next item for ``actor`` (highest risk, then oldest) and return it; None when
    nothing is left. A reviewer holding an unexpired claim gets that item back. Items the reviewer
    has already approved in this round are skipped: their second approval must be someone else's.

    On PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED`` hands concurrent reviewers different rows;
    the claim itself is a compare-and-swap on (status, claim) as well."""
    user = _reviewer(actor)
    if workflow is not None:
        require_same_org(actor, workflow)
    now = timezone.now()
    pending = Decision.objects.filter(organization=actor.organization, status=DecisionStatus.PENDING_REVIEW)
    if workflow is not None:
        pending = pending.filter(case__workflow=workflow)
    held = pending.filter(claimed_by=user, claim_expires_at__gt=now).order_by("claim_expires_at").first()
    if held is not None:
        return held
    reviewed_this_round = Review.objects.filter(
        decision=OuterRef("pk"), round=OuterRef("review_round"), reviewer=user
    )
    decision = (
        pending.filter(_claimable(now, user))
        .exclude(Exists(reviewed_this_round))
        .select_related("case__workflow")
        .order_by("-risk_level", "review_requested_at", "id")
        .select_for_update(skip_locked=True, of=("self",))
        .first()
    )
    if decision is None:
        return None
    minutes = review_settings_for(workflow=decision.case.workflow).claim_minutes
    expires = now + timedelta(minutes=minutes)
    claimed = (
        Decision.objects.filter(pk=decision.pk, status=DecisionStatus.PENDING_REVIEW)
        .filter(_claimable(now, user))
        .update(claimed_by=user, claim_expires_at=expires)
    )
    if claimed != 1:  # cannot happen under the row lock; refuse rather than double-assign
        return None
    decision.claimed_by, decision.claim_expires_at = user, expires
    audit_record(
        actor=actor,
        verb="review.claimed",
        subject=decision,
        payload={"case": decision.case_id, "expires_at": expires.isoformat()},
    )
    return decision


@transaction.atomic
def review_release(*, actor: Actor, decision: Decision) -> Decision:
    """Give a claimed item back to the queue (its claimer, or an admin)."""
    user = _reviewer(actor)
    require_same_org(actor, decision)
    query = Decision.objects.filter(pk=decision.pk, claimed_by__isnull=False)
    if actor.role != Role.ADMIN:
        query = query.filter(claimed_by=user)
    if query.update(claimed_by=None, claim_expires_at=None) != 1:
        raise ValidationError(f"decision {decision.pk} is not claimed by you")
    decision.claimed_by, decision.claim_expires_at = None, None
    audit_record(actor=actor, verb="review.released", subject=decision, payload={"case": decision.case_id})
    return decision


# --------------------------------------------------------------------------- verdicts


@transaction.atomic
def review_submit(
    *,
    actor: Actor,
    decision: Decision,
    verdict: str,
    corrected_decision: str | None = None,
    corrected_arguments: Mapping[str, Any] | None = None,
    reason: str = "",
    comment: str = "",
) -> Review:
    """Record one reviewer's verdict on a decision pending review and move it on (see the module
    docstring). Only the reviewer holding the claim may submit (an expired claim still counts
    until someone else claims the item), or an admin without one."""
    user = _reviewer(actor)
    require_same_org(actor, decision)
    decision = (
        Decision.objects.select_for_update(of=("self",))
        .select_related("case__workflow", "run__workflow_version", "policy_version")
        .get(pk=decision.pk)
    )
    if decision.status != DecisionStatus.PENDING_REVIEW:
        raise refusal(decision, "reviewed")
    if actor.role != Role.ADMIN and decision.claimed_by_id != user.pk:
        raise PermissionDenied(
            f"decision {decision.pk} is claimed by another reviewer"
            if decision.claimed_by_id
            and decision.claim_expires_at
            and decision.claim_expires_at > timezone.now()
            else f"claim decision {decision.pk} from the review queue before giving a verdict"
        )
    settings = review_settings_for(workflow=decision.case.workflow)
    reason, comment = reason.strip(), comment.strip()
    corrected = _check_verdict(decision, verdict, corrected_decision, corrected_arguments, reason)
    approvers = set(
        Review.objects.filter(decision=decision, round=decision.review_round).values_list(
            "reviewer_id", flat=True
        )
    )
    if verdict != Verdict.CORRECT and user.pk in approvers:
        raise ValidationError(
            {
                "verdict": f"You have already approved decision {decision.pk} in this round; the next "
                "verdict must come from a different reviewer."
            }
        )
    round_ = decision.review_round + (1 if verdict == Verdict.CORRECT else 0)
    review = Review.objects.create(
        organization=decision.organization,
        decision=decision,
        reviewer=user,
        verdict=verdict,
        round=round_,
        corrected_decision=corrected["decision"] if corrected else "",
        corrected_arguments=corrected["arguments"] if corrected else {},
        reason=reason,
        comment=comment,
    )
    now = timezone.now()
    released = {"claimed_by": None, "claim_expires_at": None}
    if verdict == Verdict.REJECT:
        _audit_review(actor, decision, review, approvals=0, required=decision.approvals_required)
        _transition(
            actor=actor,
            decision=decision,
            to=DecisionStatus.REJECTED,
            payload={"review": review.pk, "reason": reason, "rejected_outcome": decision.outcome},
            review_outcome=ReviewOutcome.REJECTED,
            reviewed_at=now,
            **released,
        )
        return review
    if verdict == Verdict.CORRECT:
        assert corrected is not None
        risk = settings.assess(
            fields=decision.case.fields,
            revealed=revealed_facts(decision),
            decision=corrected["decision"],
            arguments=corrected["arguments"],
        )
        required = settings.approvals_required(risk.rank)
        approvals = 1
        round_fields = {
            "outcome": corrected,
            "review_round": round_,
            "approvals_required": required,
            "risk_level": risk.rank,
            "routing": {**decision.routing, "correction": {"review": review.pk, "risk": risk.to_dict()}},
        }
    else:
        required = decision.approvals_required
        approvals = len(approvers | {user.pk})
        round_fields = {}
    _audit_review(actor, decision, review, approvals=approvals, required=required)
    if approvals < required:
        # Four-eyes: the item goes back to the queue for a different reviewer.
        changed = Decision.objects.filter(
            pk=decision.pk, status=DecisionStatus.PENDING_REVIEW, review_round=decision.review_round
        ).update(updated_at=now, **round_fields, **released)
        if changed != 1:
            raise refusal(decision, "reviewed")
        for name, value in {**round_fields, **released}.items():
            setattr(decision, name, value)
        return review
    final = DecisionStatus.CORRECTED if round_ > 0 else DecisionStatus.APPROVED
    outcome = round_fields.get("outcome", decision.outcome)
    _transition(
        actor=actor,
        decision=decision,
        to=final,
        payload={"review": review.pk, "outcome": outcome, "approvals": approvals},
        review_outcome=ReviewOutcome.CORRECTED
        if final == DecisionStatus.CORRECTED
        else ReviewOutcome.APPROVED,
        reviewed_at=now,
        **round_fields,
        **released,
    )
    review.labelled_case = _label_case(actor=actor, decision=decision, review=review)
    review.save(update_fields=["labelled_case"])
    if settings.execute_on_approval:
        execute_reviewed(actor=actor, decision=decision)
    return review


def _check_verdict(
    decision: Decision,
    verdict: str,
    corrected_decision: str | None,
    corrected_arguments: Mapping[str, Any] | None,
    reason: str,
) -> dict[str, Any] | None:
    """Validate a verdict's parts; return the corrected outcome (coerced by the spec) if any."""
    if verdict not in Verdict.values:
        raise ValidationError(
            {"verdict": f"Unknown verdict {verdict!r}; one of {', '.join(Verdict.values)}."}
        )
    if verdict != Verdict.CORRECT:
        if corrected_decision or corrected_arguments:
            raise ValidationError(
                {"corrected_decision": f"Only a correction carries a corrected outcome, not {verdict}."}
            )
        if verdict == Verdict.REJECT and not reason:
            raise ValidationError({"reason": "A rejection needs a reason."})
        return None
    if not corrected_decision:
        raise ValidationError({"corrected_decision": "A correction needs the corrected decision."})
    spec = WorkflowSpec.from_dict(decision.run.workflow_version.spec)
    if not spec.has_decision(corrected_decision):
        raise ValidationError(
            {
                "corrected_decision": f"Unknown decision {corrected_decision!r}; one of "
                f"{', '.join(spec.decision_names)}."
            }
        )
    try:
        arguments = spec.validate_decision(corrected_decision, corrected_arguments or {})
    except SpecError as exc:
        raise validation_error_from(exc, prefix="corrected_") from None
    corrected = {"decision": corrected_decision, "arguments": _jsonable(arguments)}
    if decision.outcome is not None and outcomes_agree(corrected, decision.outcome):
        raise ValidationError(
            {"corrected_decision": "The correction is the outcome under review already: approve it instead."}
        )
    return corrected


def _audit_review(actor: Actor, decision: Decision, review: Review, *, approvals: int, required: int) -> None:
    audit_record(
        actor=actor,
        verb="review.submitted",
        subject=decision,
        payload={
            "review": review.pk,
            "verdict": review.verdict,
            "round": review.round,
            "corrected": (
                {"decision": review.corrected_decision, "arguments": review.corrected_arguments}
                if review.verdict == Verdict.CORRECT
                else None
            ),
            "reason": review.reason,
            "comment": review.comment,
            "approvals": approvals,
            "approvals_required": required,
        },
    )


def _label_case(*, actor: Actor, decision: Decision, review: Review) -> Case:
    """A labelled train case from a reviewed live case: the fields copied, the approved or corrected
    outcome as expected, ``external_id`` pointing at the original."""
    original = decision.case
    label = Case.objects.create(
        organization=original.organization,
        workflow=original.workflow,
        workflow_version=original.workflow_version,
        external_id=f"case:{original.pk}",
        fields=original.fields,
        expected=_jsonable(decision.outcome),
        split=Split.TRAIN,
        source=CaseSource.REVIEW,
        difficulty=original.difficulty,
        status=CaseStatus.NEW,
    )
    audit_record(
        actor=actor,
        verb="case.created",
        subject=label,
        payload={
            "workflow": original.workflow_id,
            "split": Split.TRAIN,
            "source": CaseSource.REVIEW,
            "external_id": label.external_id,
            "from_case": original.pk,
            "decision": decision.pk,
            "review": review.pk,
            "review_outcome": decision.review_outcome,
        },
    )
    return label


__all__ = [
    "FOUR_EYES_OFF",
    "review_claim_next",
    "review_release",
    "review_submit",
    "workflow_review_settings_set",
]
