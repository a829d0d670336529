"""An experienced but imperfect adjuster's rules, for the RulesPolicy baseline.

You are in the claims pack's desk manual. These rules are what a reasonable adjuster writes
from memory, and they are deliberately not the rule book: the late-report test is off by one
day (it lets a claim reported 31 days after the incident through), the fraud threshold is
0.80 instead of 0.70, the 25,000 authority limit is forgotten, and inconsistent report dates
are not noticed. The baseline lands around 80-90% right on difficulty 0-2, which leaves a
trained policy room to beat it.
"""

from __future__ import annotations

from typing import Any

RULES: dict[str, Any] = {
    "checks": ["lookup_policy", "check_coverage", "claim_history", "fraud_score", "compute_payout"],
    "rules": [
        {
            "when": "not lookup_policy.found",
            "decision": "deny",
            "arguments": {"reason_code": "'policy_inactive'"},
            "explanation": "Policy {policy_number} was not found in the register "
            "(coverage check: {check_coverage.policy_status}).",
            "confidence": 0.97,
        },
        {
            "when": "lookup_policy.status != 'active'",
            "decision": "deny",
            "arguments": {"reason_code": "'policy_inactive'"},
            "explanation": "Policy {policy_number} is {lookup_policy.status} "
            "(term {lookup_policy.effective_date} to {lookup_policy.expiry_date}).",
            "confidence": 0.95,
        },
        {
            "when": "not check_coverage.in_force",
            "decision": "deny",
            "arguments": {"reason_code": "'policy_inactive'"},
            "explanation": "The incident on {incident_date} is outside the policy term "
            "{check_coverage.effective_date} to {check_coverage.expiry_date}.",
            "confidence": 0.9,
        },
        {
            "when": "not check_coverage.peril_covered",
            "decision": "deny",
            "arguments": {"reason_code": "'not_covered'"},
            "explanation": "Policy {policy_number} covers {lookup_policy.coverages}; "
            "{claim_type} is not covered (policy {lookup_policy.status}).",
            "confidence": 0.95,
        },
        {
            # Imperfect on purpose: "more than a month" read as more than 31 days.
            "when": "days_between(incident_date, report_date) > 31",
            "decision": "deny",
            "arguments": {"reason_code": "'late_report'"},
            "explanation": "Reported on {report_date}, more than a month after the incident on "
            "{incident_date}; policy {lookup_policy.status}, limit {check_coverage.limit}.",
            "confidence": 0.85,
        },
        {
            # Imperfect on purpose: the department's threshold is 0.70.
            "when": "fraud_score.score >= 0.8",
            "decision": "escalate",
            "arguments": {"reason": "'fraud_suspected'"},
            "explanation": "Fraud score {fraud_score.score} (signals: {fraud_score.signals}); "
            "{claim_history.prior_claims_12m} prior claim(s) in 12 months.",
            "confidence": 0.8,
        },
        {
            "when": "compute_payout.payout <= 0",
            "decision": "deny",
            "arguments": {"reason_code": "'below_deductible'"},
            "explanation": "Claimed {amount_claimed} is within the deductible of "
            "{check_coverage.deductible}; payout {compute_payout.payout}.",
            "confidence": 0.9,
        },
    ],
    "default": {
        "decision": "approve",
        "arguments": {"amount": "compute_payout.payout"},
        "explanation": "Policy {policy_number} is {lookup_policy.status}; {claim_type} covered up to "
        "{check_coverage.limit} with deductible {check_coverage.deductible}; "
        "fraud score {fraud_score.score}. Paying {compute_payout.payout}.",
        "confidence": 0.85,
    },
}
