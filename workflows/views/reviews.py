"""The review queue: claim next, verdicts by keyboard, four-eyes state.

A reviewer works the queue item by item: "claim next" (``review_claim_next``) opens the item the
queue hands them, a verdict (``review_submit``) records it and goes straight to the next item.
Approve, reject and correct have keyboard shortcuts (static/js/operations.js reads ``data-key``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from caseloop import formatting
from caseloop.accounts.decorators import role_required
from caseloop.accounts.models import Role
from workflows import selectors
from workflows.engine.spec import WorkflowSpec
from workflows.models import Decision, DecisionStatus
from workflows.review_settings import risk_level_name
from workflows.services import review_claim_next, review_release, review_submit

PER_PAGE_CHOICES = (10, 25, 50, 100)
VERDICT_LABELS = {"approve": "Approved", "reject": "Rejected", "correct": "Corrected"}


def _per_page(request) -> int:
    try:
        value = int(request.GET.get("per_page", 25))
    except ValueError:
        return 25
    return value if value in PER_PAGE_CHOICES else 25


def _url_or_none(name: str, *args: Any) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def _decision(request, decision_id: int) -> Decision:
    """The organisation's decision (404 for another organisation's, or none)."""
    return get_object_or_404(
        selectors.decision_list(actor=request.actor).select_related(
            "case__workflow", "run__workflow_version", "policy_version__policy", "claimed_by"
        ),
        pk=decision_id,
    )


@role_required("review.verdict")
@require_GET
def review_queue(request):
    actor = request.actor
    per_page = _per_page(request)
    now = timezone.now()
    page, items = selectors.review_queue_page(
        actor=actor, page=request.GET.get("page"), per_page=per_page, now=now
    )
    held = selectors.review_claim_held(actor=actor, now=now)
    rows = []
    for item in items:
        decision = item.decision
        outcome = decision.outcome or {"decision": decision.name, "arguments": decision.arguments}
        rows.append(
            {
                "item": item,
                "decision": decision,
                "proposed": outcome.get("decision", decision.name),
                "arguments": formatting.arguments(outcome.get("arguments")),
                "waiting": formatting.duration(item.age),
                "due": formatting.duration(now - item.due_at if item.overdue else item.due_at - now),
                "mine": item.claimed_by_id == actor.user.pk,
            }
        )
    return render(
        request,
        "reviews/queue.html",
        {
            "page": page,
            "rows": rows,
            "per_page": per_page,
            "per_page_choices": PER_PAGE_CHOICES,
            "query": f"per_page={per_page}",
            "held": held,
            "now": now,
        },
    )


def _claim_next_redirect(request) -> HttpResponseRedirect:
    decision = review_claim_next(actor=request.actor)
    if decision is None:
        messages.info(request, "The review queue is empty: nothing left for you to review.")
        return redirect("review-queue")
    return redirect("review-item", decision.pk)


@role_required("review.verdict")
@require_POST
def review_claim(request):
    return _claim_next_redirect(request)


def _holds(request, decision: Decision) -> bool:
    return request.actor.role == Role.ADMIN or decision.claimed_by_id == request.actor.user.pk


def _argument_fields(spec: WorkflowSpec, decision: Decision, posted: dict[str, str] | None) -> list[dict]:
    """The correction form: each decision of the spec with its typed arguments, prefilled from the
    post (after an error) or from the outcome under review."""
    outcome = decision.outcome or {"decision": decision.name, "arguments": decision.arguments}
    groups = []
    for choice in spec.decisions:
        fields = []
        for argument in choice.arguments:
            key = f"arg__{choice.name}__{argument.name}"
            if posted is not None:
                value = posted.get(key, "")
            elif outcome.get("decision") == choice.name:
                value = outcome.get("arguments", {}).get(argument.name, "")
            else:
                value = ""
            fields.append({"spec": argument, "key": key, "value": "" if value is None else str(value)})
        groups.append({"name": choice.name, "description": choice.description, "fields": fields})
    return groups


def _render_item(request, decision: Decision, *, errors: dict[str, list[str]] | None = None, status=200):
    actor = request.actor
    spec = WorkflowSpec.from_dict(decision.run.workflow_version.spec)
    reviews = list(selectors.decision_reviews(actor=actor, decision=decision))
    this_round = [r for r in reviews if r.round == decision.review_round]
    settings = selectors.review_settings_for(workflow=decision.case.workflow)
    now = timezone.now()
    since = decision.review_requested_at or decision.created_at
    due_at = since + timedelta(hours=settings.service_level_hours)
    posted = request.POST.dict() if request.method == "POST" else None
    outcome = decision.outcome or {"decision": decision.name, "arguments": decision.arguments}
    explanation = decision.explanation or {}
    context = {
        "decision": decision,
        "case": decision.case,
        "outcome": outcome,
        "explanation": explanation,
        "facts": explanation.get("facts") or {},
        "alternatives": explanation.get("alternatives") or [],
        "reviews": reviews,
        "approvals": len(this_round),
        "approvals_required": decision.approvals_required,
        "approved_by_me": any(r.reviewer_id == actor.user.pk for r in this_round),
        "risk_level": risk_level_name(decision.risk_level),
        "since": since,
        "due_at": due_at,
        "overdue": now > due_at,
        "service_level_hours": settings.service_level_hours,
        "now": now,
        "decisions": _argument_fields(spec, decision, posted),
        "chosen_correction": (posted or {}).get("corrected_decision", ""),
        "comment": (posted or {}).get("comment", ""),
        "reason": (posted or {}).get("reason", ""),
        "errors": errors or {},
        "error_list": [f"{k}: {' '.join(v)}" for k, v in (errors or {}).items()],
        "pending": decision.status == DecisionStatus.PENDING_REVIEW,
        "holds_claim": _holds(request, decision),
        "case_url": _url_or_none("case-detail", decision.case_id),
        "decision_url": _url_or_none("decision-detail", decision.pk),
        "run_url": _url_or_none("run-detail", decision.run_id),
    }
    return render(request, "reviews/item.html", context, status=status)


@role_required("review.verdict")
@require_GET
def review_item(request, decision_id: int):
    decision = _decision(request, decision_id)
    if decision.status == DecisionStatus.PENDING_REVIEW and not _holds(request, decision):
        messages.warning(request, f"Decision {decision.pk} is not claimed by you: claim the next item.")
        return redirect("review-queue")
    return _render_item(request, decision)


def _correction(request) -> tuple[str | None, dict[str, str] | None]:
    chosen = request.POST.get("corrected_decision", "").strip()
    if not chosen:
        return None, None
    prefix = f"arg__{chosen}__"
    arguments = {
        key[len(prefix) :]: value.strip()
        for key, value in request.POST.items()
        if key.startswith(prefix) and value.strip() != ""
    }
    return chosen, arguments


@role_required("review.verdict")
@require_POST
def review_verdict(request, decision_id: int):
    decision = _decision(request, decision_id)
    verdict = request.POST.get("verdict", "")
    corrected_decision, corrected_arguments = (None, None)
    if verdict == "correct":
        corrected_decision, corrected_arguments = _correction(request)
    try:
        review_submit(
            actor=request.actor,
            decision=decision,
            verdict=verdict,
            corrected_decision=corrected_decision,
            corrected_arguments=corrected_arguments,
            reason=request.POST.get("reason", "") if verdict == "reject" else "",
            comment=request.POST.get("comment", ""),
        )
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"verdict": exc.messages}
        decision.refresh_from_db()
        return _render_item(request, decision, errors=errors, status=400)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return redirect("review-queue")
    decision.refresh_from_db(fields=["status", "approvals_required", "review_round", "outcome"])
    label = VERDICT_LABELS.get(verdict, verdict)
    what = decision.name
    if verdict == "correct" and decision.outcome:
        arguments = " ".join(f"{k}={v}" for k, v in (decision.outcome.get("arguments") or {}).items())
        what = f"{decision.outcome['decision']} {arguments}".strip() + f" (was {decision.name})"
    waits = (
        " It waits for a second reviewer (four eyes)."
        if decision.status == DecisionStatus.PENDING_REVIEW
        else ""
    )
    messages.success(request, f"{label}: {what} on {decision.case}.{waits}")
    return _claim_next_redirect(request)


@role_required("review.verdict")
@require_POST
def review_release_view(request, decision_id: int):
    decision = _decision(request, decision_id)
    try:
        review_release(actor=request.actor, decision=decision)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.info(request, f"Decision {decision.pk} is back in the queue.")
    return redirect("review-queue")


urlpatterns = [
    path("reviews/", review_queue, name="review-queue"),
    path("reviews/claim/", review_claim, name="review-claim-next"),
    path("reviews/<int:decision_id>/", review_item, name="review-item"),
    path("reviews/<int:decision_id>/verdict/", review_verdict, name="review-verdict"),
    path("reviews/<int:decision_id>/release/", review_release_view, name="review-release"),
]
