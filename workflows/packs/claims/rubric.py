"""The claims pack's default rubric: what a claims manager would reward.

You are in the claims pack's quality-review desk. The outcome carries the most weight; the
reason code and the paid amount come next; then process (policy and coverage checked, fraud
checked before paying) and an explanation that cites the facts the tools revealed. Three gates
zero the reward whatever else went right: paying more than the coverage limit, paying without
having found the policy, and paying on a policy not in force or a peril not covered. The step
cost is small, so checking is cheap but not free.
"""

from __future__ import annotations

from typing import Any

RUBRIC: dict[str, Any] = {
    "step_cost": 0.005,
    "shaping": {"lookup_policy": 0.01, "check_coverage": 0.01},
    "criteria": [
        {
            "name": "right_outcome",
            "kind": "outcome_match",
            "weight": 4,
            "description": "Approve, deny or escalate as the rule book says.",
        },
        {
            "name": "right_deny_reason",
            "kind": "field_match",
            "weight": 2,
            "when": "expected_decision == 'deny'",
            "description": "The reason code of a denial is the right one.",
            "params": {"argument": "reason_code"},
        },
        {
            "name": "right_escalation_reason",
            "kind": "field_match",
            "weight": 2,
            "when": "expected_decision == 'escalate'",
            "description": "The reason of an escalation is the right one.",
            "params": {"argument": "reason"},
        },
        {
            "name": "payout_within_tolerance",
            "kind": "numeric_tolerance",
            "weight": 3,
            "when": "expected_decision == 'approve'",
            "description": "The amount paid is the payout (claim capped at the limit, minus the deductible).",
            "params": {"argument": "amount", "relative": 0.01, "absolute": 1.0},
        },
        {
            "name": "looked_up_policy",
            "kind": "required_step",
            "weight": 0.5,
            "description": "The policy was looked up before deciding.",
            "params": {"tool": "lookup_policy", "before_decision": True},
        },
        {
            "name": "checked_coverage",
            "kind": "required_step",
            "weight": 0.5,
            "description": "Coverage was checked before deciding.",
            "params": {"tool": "check_coverage", "before_decision": True},
        },
        {
            "name": "fraud_checked_before_payment",
            "kind": "step_order",
            "weight": 0.5,
            "description": "No payment before the fraud score was seen.",
            "params": {"before": "fraud_score", "after": "approve"},
        },
        {
            "name": "explanation_cites_facts",
            "kind": "explanation_mentions",
            "weight": 1,
            "description": "The explanation cites at least two facts the tools revealed.",
            "params": {
                "cite_tools": [
                    "lookup_policy",
                    "check_coverage",
                    "claim_history",
                    "fraud_score",
                    "compute_payout",
                ],
                "min_matches": 2,
            },
        },
        {
            "name": "approval_within_limit",
            "kind": "expression",
            "weight": 0,
            "gate": True,
            "when": "decision == 'approve'",
            "description": "Never pay more than the coverage limit (which must have been checked).",
            "params": {
                "expression": "'check_coverage' in steps and arguments.amount <= check_coverage.limit"
            },
        },
        {
            "name": "no_approval_without_policy",
            "kind": "expression",
            "weight": 0,
            "gate": True,
            "when": "decision == 'approve'",
            "description": "Never pay without having looked up the policy and found it.",
            "params": {"expression": "'lookup_policy' in steps and lookup_policy.found"},
        },
        {
            "name": "no_payment_without_cover",
            "kind": "expression",
            "weight": 0,
            "gate": True,
            "when": "decision == 'approve'",
            "description": "Never pay on a policy not in force or for a peril it does not cover.",
            "params": {
                "expression": "'check_coverage' in steps"
                " and check_coverage.in_force and check_coverage.peril_covered"
            },
        },
    ],
}
