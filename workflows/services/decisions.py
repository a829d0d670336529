"""A decision's life: routing by autonomy stage, the state machine, execution, and its explanation.

You are in the decisions room. Every change of a decision's status goes through
:func:`_transition`: it checks the transition is allowed, applies it with a compare-and-swap
(``UPDATE … WHERE id = … AND status = <expected>``, so two workers can never both execute or
review a decision) and writes ``decision.<status>`` to the audit trail in the same transaction.

=================  =================  =================================================
from               to                 when
=================  =================  =================================================
proposed           pending_review     routing: supervised stage, or autonomous with low
                                      confidence or a risk rule fired
proposed           executed           routing: autonomous, confident, no risk rule fired
proposed           shadow             routing: a shadow version's decision (terminal:
                                      recorded and compared, never executed)
pending_review     approved           the last required approval of the proposal
pending_review     corrected          a correction (and, above the four-eyes level,
                                      another reviewer's approval of it)
pending_review     rejected           a rejection, with its reason (terminal)
approved           executed           on approval, or ``decision_execute``
corrected          executed           the same; executes the corrected outcome
=================  =================  =================================================

Anything else is refused with a ValidationError that names the decision and its status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from caseloop.accounts.permissions import Actor, require_same_org
from caseloop.audit.services import audit_record
from caseloop.webhooks import payloads as webhook_payloads  # webhooks: decision.finalized
from caseloop.webhooks.services import webhooks_emit  # webhooks: decision.finalized
from training.models import Stage
from workflows.engine.environment import Trajectory
from workflows.engine.errors import ExpressionError
from workflows.engine.policies import Policy, RulesPolicy
from workflows.engine.rubric import ANY_DECISION
from workflows.engine.rubric import Rubric as EngineRubric
from workflows.engine.spec import WorkflowSpec
from workflows.models import Decision, DecisionStatus
from workflows.review_settings import ReviewSettings

S = DecisionStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PROPOSED: frozenset({S.PENDING_REVIEW, S.EXECUTED, S.SHADOW}),
    S.PENDING_REVIEW: frozenset({S.APPROVED, S.CORRECTED, S.REJECTED}),
    S.APPROVED: frozenset({S.EXECUTED}),
    S.CORRECTED: frozenset({S.EXECUTED}),
    S.REJECTED: frozenset(),
    S.EXECUTED: frozenset(),
    S.SHADOW: frozenset(),
}
# --- webhooks: the final statuses, which emit ``decision.finalized``: the terminal ones with a
# business outcome (a shadow decision is terminal too but is never executed, so it emits nothing).
FINAL_STATUSES: frozenset[str] = frozenset({S.EXECUTED, S.REJECTED})
# --- end webhooks ---
# How a refusal names what was attempted: "decision 12 is executed; it cannot be reviewed".
_ATTEMPT: dict[str, str] = {
    S.PENDING_REVIEW: "sent to review",
    S.EXECUTED: "executed",
    S.SHADOW: "recorded as a shadow decision",
    S.APPROVED: "reviewed",
    S.CORRECTED: "reviewed",
    S.REJECTED: "reviewed",
}


def refusal(decision: Decision, attempt: str, status: str | None = None) -> ValidationError:
    """``decision 12 is executed; it cannot be reviewed``."""
    label = DecisionStatus(status or decision.status).label.lower()
    return ValidationError(f"decision {decision.pk} is {label}; it cannot be {attempt}")


def _transition(
    *,
    actor: Actor,
    decision: Decision,
    to: str,
    payload: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Decision:
    """Move ``decision`` from its (in-memory) status to ``to`` with a compare-and-swap, set ``fields``
    with it, and audit ``decision.<to>``. Must run inside the caller's transaction."""
    expected = decision.status
    if to not in TRANSITIONS[expected]:
        raise refusal(decision, _ATTEMPT[to])
    now = timezone.now()
    changed = Decision.objects.filter(pk=decision.pk, status=expected).update(
        status=to, updated_at=now, **fields
    )
    if changed != 1:
        # Someone moved it first (another worker, another reviewer): report where it is now.
        current = Decision.objects.filter(pk=decision.pk).values_list("status", flat=True).first()
        raise refusal(decision, _ATTEMPT[to], status=current)
    decision.status = to
    decision.updated_at = now
    for name, value in fields.items():
        setattr(decision, name, value)
    audit_record(
        actor=actor,
        verb=f"decision.{to}",
        subject=decision,
        payload={
            "from": expected,
            "to": to,
            "actor": actor.label,
            "case": decision.case_id,
            "policy_version": decision.policy_version_id,
            **(payload or {}),
        },
    )
    # --- webhooks: decision.finalized (sent on commit; the data is built only if someone subscribes)
    if to in FINAL_STATUSES:
        webhooks_emit(
            organization=actor.organization,
            event="decision.finalized",
            payload=lambda: webhook_payloads.decision_finalized(decision, actor=actor, details=payload),
        )
    # --- end webhooks ---
    return decision


def proposal_of(decision: Decision) -> dict[str, Any]:
    return {"decision": decision.name, "arguments": dict(decision.arguments)}


def revealed_facts(decision: Decision) -> dict[str, Any]:
    """The tool results the decision's run revealed, by tool name."""
    return {
        step.action: step.result
        for step in decision.run.steps.filter(kind="tool", error="").order_by("index")
        if step.result is not None
    }


# --------------------------------------------------------------------------- routing


@transaction.atomic
def decision_route(*, decision: Decision, stage: str, settings: ReviewSettings | None = None) -> Decision:
    """Send a fresh (proposed) decision where its policy version's stage says.

    - shadow: recorded as ``shadow``, never executed;
    - supervised: always to review;
    - autonomous: executed when the confidence is at or above the workflow's threshold and no risk
      rule fires, otherwise to review.

    Risk rules are evaluated at every production stage: the highest level among those that fire
    orders the review queue and decides whether two reviewers must approve (four-eyes).
    """
    from workflows.selectors import review_settings_for

    actor = Actor.for_policy(decision.policy_version)
    proposal = proposal_of(decision)
    if stage == Stage.SHADOW:
        return _transition(
            actor=actor,
            decision=decision,
            to=S.SHADOW,
            payload={"stage": stage, "outcome": proposal},
            outcome=proposal,
            routing={"stage": stage, "reason": "shadow version: recorded for comparison, never executed"},
        )
    if stage not in (Stage.SUPERVISED, Stage.AUTONOMOUS):
        raise ValidationError({"stage": f"A {stage} version does not decide live cases."})
    settings = settings or review_settings_for(workflow=decision.case.workflow)
    risk = settings.assess(
        fields=decision.case.fields,
        revealed=revealed_facts(decision),
        decision=decision.name,
        arguments=decision.arguments,
    )
    threshold = settings.confidence_threshold
    confidence = decision.confidence
    confident = confidence is not None and confidence >= threshold
    shown = "unknown" if confidence is None else f"{confidence:.3f}"
    reasons: list[str] = []
    if stage == Stage.SUPERVISED:
        reasons.append("supervised: every decision is reviewed")
    else:
        if not confident:
            reasons.append(f"confidence {shown} is below the threshold {threshold:.3f}")
        reasons.extend(f"risk rule {rule['name']!r} ({rule['level']}) fired" for rule in risk.fired)
    approvals = settings.approvals_required(risk.rank)
    routing = {
        "stage": stage,
        "confidence": confidence,
        "confidence_threshold": threshold,
        "risk": risk.to_dict(),
        "approvals_required": approvals,
        "four_eyes_level": settings.four_eyes_level,
    }
    if not reasons:
        routing["reason"] = f"autonomous: confidence {shown} ≥ {threshold:.3f} and no risk rule fired"
        return _transition(
            actor=actor,
            decision=decision,
            to=S.EXECUTED,
            payload={"stage": stage, "outcome": proposal, "routing": routing},
            outcome=proposal,
            routing=routing,
            risk_level=risk.rank,
            executed_at=timezone.now(),
        )
    routing["reason"] = "; ".join(reasons)
    return _transition(
        actor=actor,
        decision=decision,
        to=S.PENDING_REVIEW,
        payload={"stage": stage, "outcome": proposal, "routing": routing},
        outcome=proposal,
        routing=routing,
        risk_level=risk.rank,
        approvals_required=approvals,
        review_requested_at=timezone.now(),
    )


# --------------------------------------------------------------------------- execution


def execute_reviewed(*, actor: Actor, decision: Decision) -> Decision:
    """approved/corrected → executed, carrying out ``decision.outcome`` (the correction, if any).
    Inside the caller's transaction; the caller has checked the actor."""
    return _transition(
        actor=actor,
        decision=decision,
        to=S.EXECUTED,
        payload={"outcome": decision.outcome, "review_outcome": decision.review_outcome},
        executed_at=timezone.now(),
        claimed_by=None,
        claim_expires_at=None,
    )


@transaction.atomic
def decision_execute(*, actor: Actor, decision: Decision) -> Decision:
    """Execute an approved or corrected decision (when the workflow does not execute on approval,
    an integration calls this once it has carried the outcome out). A corrected decision executes
    the corrected outcome. Refused for every other status: a rejected decision never executes, an
    executed one never twice (compare-and-swap), and a proposed one only through autonomy routing."""
    if not (actor.system or actor.policy_version is not None or actor.can("decision.decide")):
        raise PermissionDenied(f"{actor.label} may not execute decisions (role {actor.role or '-'}).")
    require_same_org(actor, decision)
    if decision.status == S.PROPOSED:
        raise ValidationError(
            f"decision {decision.pk} is proposed; only its policy's autonomy routing can execute it "
            "without review"
        )
    return execute_reviewed(actor=actor, decision=decision)


# --------------------------------------------------------------------------- explanation


def decision_explanation(
    *,
    trajectory: Trajectory,
    spec: WorkflowSpec,
    policy: Policy | None = None,
    rubric: EngineRubric | None = None,
) -> dict[str, Any]:
    """The structured explanation a reviewer reads next to a decision.

    - ``text``: what the policy said;
    - ``facts``: every tool result revealed in the run (tool name → result), and ``cited``: the
      ones the text mentions (``{"tool", "key", "value"}``);
    - ``rule``: for a rules policy, the rule that fired (``rules[3]`` and its condition, or
      ``default``); else None;
    - ``criteria``: the rubric criteria that concern the chosen decision (its outcome, its
      arguments, conditions and gates naming it);
    - ``confidence`` and ``alternatives``: the decisions the policy weighed, most probable first;
    - ``features``: the input features that drove the choice (filled for neural policies).
    """
    decision = trajectory.decision
    if decision is None:
        return {}
    facts = trajectory.revealed()
    text = decision.explanation or ""
    decision_names = set(spec.decision_names)
    weighed = sorted(
        ((float(p), name) for name, p in decision.probabilities.items() if name in decision_names),
        key=lambda pair: -pair[0],
    )
    alternatives = [
        {"decision": name, "probability": p, "chosen": name == decision.name} for p, name in weighed
    ]
    # Neural policies say which input features drove the choice (integrated gradients).
    attribute = getattr(policy, "feature_attributions", None)
    features = attribute(trajectory.steps[-1].observation_before, decision.name) if attribute else []
    return {
        "text": text,
        "facts": facts,
        "cited": _cited_facts(facts, text),
        "rule": _fired_rule(policy, trajectory),
        "criteria": _criteria_about(rubric, spec, decision.name),
        "confidence": decision.confidence,
        "alternatives": alternatives,
        "features": features,
    }


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _cited_facts(facts: Mapping[str, Mapping[str, Any]], text: str) -> list[dict[str, Any]]:
    """The facts the explanation text mentions: numbers written in it (1,234.5 == 1234.50, zero
    excepted) and strings of three characters or more (lists: any item). Booleans never count."""
    lowered = text.lower()
    numbers = set()
    for token in _NUMBER.findall(lowered):
        try:
            numbers.add(round(float(token.replace(",", "")), 2))
        except ValueError:
            continue

    def mentioned(value: Any) -> bool:
        if isinstance(value, bool) or value is None:
            return False
        if isinstance(value, (int, float)):
            return value != 0 and round(float(value), 2) in numbers
        if isinstance(value, str):
            return len(value) >= 3 and value.lower() in lowered
        if isinstance(value, (list, tuple)):
            return any(mentioned(item) for item in value)
        return False

    return [
        {"tool": tool, "key": key, "value": value}
        for tool, result in facts.items()
        for key, value in (result or {}).items()
        if mentioned(value)
    ]


def _fired_rule(policy: Policy | None, trajectory: Trajectory) -> dict[str, Any] | None:
    """Which of a rules policy's rules decided: the first whose condition and arguments evaluate
    on what the policy saw when it decided (the same test RulesPolicy.act applies)."""
    if not isinstance(policy, RulesPolicy) or not trajectory.steps or trajectory.decision is None:
        return None
    seen = trajectory.steps[-1].observation_before
    context = {**seen.case, **seen.revealed}
    for index, rule in enumerate(policy.rules):
        try:
            if rule.when is not None and not rule.when.evaluate(context):
                continue
            for _, expression in rule.arguments:
                expression.evaluate(context)
        except ExpressionError:
            continue
        if rule.decision == trajectory.decision.name:
            return {"rule": f"rules[{index}]", "when": rule.when.source if rule.when else None}
        return None  # the first rule that applies decided something else: cannot attribute
    if policy.default.decision == trajectory.decision.name:
        return {"rule": "default", "when": None}
    return None


def _criteria_about(rubric: EngineRubric | None, spec: WorkflowSpec, decision: str) -> list[dict[str, Any]]:
    if rubric is None or not spec.has_decision(decision):
        return []
    arguments = {argument.name for argument in spec.decision(decision).arguments}
    quoted = (f"'{decision}'", f'"{decision}"')
    related = []
    for criterion in rubric.criteria:
        params = criterion.params
        conditions = f"{criterion.when or ''} {params.get('expression') or ''}"
        steps = (params.get("before"), params.get("after"), params.get("tool_or_decision"))
        about = (
            criterion.kind == "outcome_match"
            or params.get("argument") in arguments
            or decision in steps
            or (criterion.kind == "step_order" and ANY_DECISION in steps)
            or any(q in conditions for q in quoted)
        )
        if about:
            related.append(
                {
                    "name": criterion.name,
                    "kind": criterion.kind,
                    "gate": criterion.gate,
                    "description": criterion.description,
                }
            )
    return related


__all__ = [
    "TRANSITIONS",
    "decision_execute",
    "decision_explanation",
    "decision_route",
    "execute_reviewed",
    "proposal_of",
    "refusal",
    "revealed_facts",
]
