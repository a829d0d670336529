"""Hidden adjudication: the claims department's rule book, which gives each case its expected outcome.

You are in the claims pack's rule book. The rules, in order — the first that applies decides:

1. policy not found, lapsed or cancelled, or not in force on the incident date → deny ``policy_inactive``
2. peril not covered by the policy → deny ``not_covered``
3. report dated before the incident (inconsistent claim) → escalate ``needs_investigation``
4. reported more than 30 days after the incident → deny ``late_report``
5. fraud score at or above 0.70 → escalate ``fraud_suspected``
6. payout above the adjuster's authority (25,000) → escalate ``high_value``
7. payout of zero (claim at or below the deductible) → deny ``below_deductible``
8. otherwise → approve the payout

The agent never sees this module; it has to rediscover the rules from the rubric's reward.
The reference solver applies the same two stages to what the tools reveal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workflows.engine import Outcome

from .tools import coverage_facts, days_between, find_policy, fraud_facts, payout_for

__all__ = [
    "AUTHORITY_LIMIT",
    "FRAUD_THRESHOLD",
    "LATE_REPORT_DAYS",
    "adjudicate",
    "assessment_outcome",
    "screening_outcome",
]

LATE_REPORT_DAYS = 30
FRAUD_THRESHOLD = 0.7
AUTHORITY_LIMIT = 25_000.0


def screening_outcome(*, in_force: bool, peril_covered: bool, report_delay_days: int) -> Outcome | None:
    """Rules 1-4: what can be decided from the policy, the coverage and the dates alone."""
    if not in_force:
        return Outcome("deny", {"reason_code": "policy_inactive"})
    if not peril_covered:
        return Outcome("deny", {"reason_code": "not_covered"})
    if report_delay_days < 0:
        return Outcome("escalate", {"reason": "needs_investigation"})
    if report_delay_days > LATE_REPORT_DAYS:
        return Outcome("deny", {"reason_code": "late_report"})
    return None


def assessment_outcome(*, fraud_score: float, payout: float) -> Outcome:
    """Rules 5-8: fraud, authority limit, deductible, payment."""
    if fraud_score >= FRAUD_THRESHOLD:
        return Outcome("escalate", {"reason": "fraud_suspected"})
    if payout > AUTHORITY_LIMIT:
        return Outcome("escalate", {"reason": "high_value"})
    if payout <= 0:
        return Outcome("deny", {"reason_code": "below_deductible"})
    return Outcome("approve", {"amount": payout})


def adjudicate(fields: Mapping[str, Any], tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> Outcome:
    """The expected outcome of a claim, from its fields and the reference tables."""
    coverage = coverage_facts(fields, find_policy(tables, fields["policy_number"]))
    screened = screening_outcome(
        in_force=coverage["in_force"],
        peril_covered=coverage["peril_covered"],
        report_delay_days=days_between(fields["incident_date"], fields["report_date"]),
    )
    if screened is not None:
        return screened
    return assessment_outcome(
        fraud_score=fraud_facts(fields, tables)["score"],
        payout=payout_for(float(fields["amount_claimed"]), coverage["limit"], coverage["deductible"]),
    )
