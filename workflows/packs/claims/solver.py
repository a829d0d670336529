"""The claims pack's reference solver: the rule book applied to what the tools reveal.

You are in the claims pack's senior adjuster's office. The solver calls only the tools a case
needs — policy and coverage always (the rubric requires them), history, fraud score and payout
only when the claim survives screening — then decides with the same two stages as the hidden
adjudication and explains itself with the revealed facts. It scores near the top of the
default rubric and is the yardstick for trained policies and for rubric red-teaming.
"""

from __future__ import annotations

from typing import Any

from workflows.engine import Action, Observation, Outcome, WorkflowSpec, format_value

from .adjudication import (
    AUTHORITY_LIMIT,
    FRAUD_THRESHOLD,
    LATE_REPORT_DAYS,
    assessment_outcome,
    screening_outcome,
)
from .tools import days_between

__all__ = ["ClaimsSolver"]

_SCREENING_TOOLS = ("lookup_policy", "check_coverage")
_ASSESSMENT_TOOLS = ("claim_history", "fraud_score", "compute_payout")


class ClaimsSolver:
    """Reference policy for the claims workflow (stateless: everything comes from the observation)."""

    def __init__(self, spec: WorkflowSpec) -> None:
        missing = [name for name in (*_SCREENING_TOOLS, *_ASSESSMENT_TOOLS) if not spec.has_tool(name)]
        if missing:
            raise ValueError(f"the claims solver needs tools {', '.join(missing)}")
        self.spec = spec
        self._tool_actions = {
            name: Action.tool(name, explanation=f"check {name}")
            for name in (*_SCREENING_TOOLS, *_ASSESSMENT_TOOLS)
        }

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, observation: Observation) -> Action:
        revealed = observation.revealed
        for name in _SCREENING_TOOLS:
            if name not in revealed:
                return self._tool_actions[name]
        case = observation.case
        coverage = revealed["check_coverage"]
        delay = days_between(case["incident_date"], case["report_date"])
        screened = screening_outcome(
            in_force=coverage["in_force"], peril_covered=coverage["peril_covered"], report_delay_days=delay
        )
        if screened is not None:
            return self._decide(screened, _screening_explanation(screened, case, revealed, delay))
        for name in _ASSESSMENT_TOOLS:
            if name not in revealed:
                return self._tool_actions[name]
        outcome = assessment_outcome(
            fraud_score=revealed["fraud_score"]["score"], payout=revealed["compute_payout"]["payout"]
        )
        return self._decide(outcome, _assessment_explanation(outcome, case, revealed))

    def _decide(self, outcome: Outcome, explanation: str) -> Action:
        return Action.decide(outcome.decision, dict(outcome.arguments), explanation, confidence=0.99)


def _money(value: Any) -> str:
    return format_value(float(value))


def _screening_explanation(outcome: Outcome, case: Any, revealed: Any, delay: int) -> str:
    policy, coverage = revealed["lookup_policy"], revealed["check_coverage"]
    number, peril = case["policy_number"], case["claim_type"]
    reason = next(iter(outcome.arguments.values()))
    if reason == "policy_inactive":
        if not policy["found"]:
            return (
                f"Policy {number} was not found in the policy register, so the {peril} claim cannot be paid."
            )
        if policy["status"] != "active":
            return (
                f"Policy {number} is {policy['status']} (term {policy['effective_date']} to "
                f"{policy['expiry_date']}), so there is no cover for the {peril} claim."
            )
        return (
            f"Policy {number} is active but its term {coverage['effective_date']} to "
            f"{coverage['expiry_date']} does not include the incident date {case['incident_date']}."
        )
    cover = (
        f"Policy {number} is {policy['status']} and covers {policy['coverages']}"
        f" (limit {_money(coverage['limit'])}, deductible {_money(coverage['deductible'])})"
    )
    if reason == "not_covered":
        return (
            f"Policy {number} covers {policy['coverages']}; {peril} is not covered "
            f"(policy status {policy['status']})."
        )
    if reason == "needs_investigation":
        return (
            f"The claim was reported on {case['report_date']}, {-delay} day(s) before the incident date "
            f"{case['incident_date']}: the dates are inconsistent. {cover}. Escalated for investigation."
        )
    return (
        f"Reported {delay} days after the incident ({case['incident_date']} to {case['report_date']}), "
        f"beyond the {LATE_REPORT_DAYS}-day reporting limit. {cover}."
    )


def _assessment_explanation(outcome: Outcome, case: Any, revealed: Any) -> str:
    coverage, fraud = revealed["check_coverage"], revealed["fraud_score"]
    history, payout = revealed["claim_history"], revealed["compute_payout"]["payout"]
    signals = ", ".join(fraud["signals"]) or "none"
    arithmetic = (
        f"payout {_money(payout)} = min({_money(case['amount_claimed'])}, limit {_money(coverage['limit'])}) "
        f"- deductible {_money(coverage['deductible'])}"
    )
    decision = outcome.decision
    reason = next(iter(outcome.arguments.values())) if decision != "approve" else None
    if reason == "fraud_suspected":
        return (
            f"Fraud score {fraud['score']:.2f} is at or above {FRAUD_THRESHOLD:.2f} (signals: {signals}); "
            f"{history['prior_claims_12m']} prior claim(s) in 12 months. Escalated for a fraud review."
        )
    if reason == "high_value":
        return (
            f"The {arithmetic} exceeds the {_money(AUTHORITY_LIMIT)} authority limit "
            f"(fraud score {fraud['score']:.2f}). Escalated to a senior adjuster."
        )
    if reason == "below_deductible":
        return f"The claim does not exceed the deductible: {arithmetic}. Nothing to pay."
    return (
        f"Policy {case['policy_number']} is {coverage['policy_status']} and covers {case['claim_type']}; "
        f"fraud score {fraud['score']:.2f} with {history['prior_claims_12m']} prior claim(s) in 12 months. "
        f"Approved: {arithmetic}."
    )
