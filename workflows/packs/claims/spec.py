"""The auto-insurance claims workflow spec: case fields, tools, decisions.

You are in the claims pack's blueprint. An adjuster (human or agent) sees the claim form; the
policy register, the coverage terms, the claim history and the fraud model sit behind tools.
Decisions: pay (``approve`` with the amount), ``deny`` with a reason code, or ``escalate`` to
a human with a reason.
"""

from __future__ import annotations

from typing import Any

PERILS = ["collision", "theft", "vandalism", "weather", "fire", "glass", "liability"]
DENY_REASONS = ["policy_inactive", "not_covered", "late_report", "below_deductible"]
ESCALATE_REASONS = ["fraud_suspected", "needs_investigation", "high_value"]

SPEC: dict[str, Any] = {
    "name": "claims",
    "title": "Auto insurance claims",
    "description": (
        "Decide first-notice-of-loss auto claims: pay, deny with a reason, or escalate to a senior adjuster."
    ),
    "max_steps": 12,
    "case_fields": [
        {"name": "claim_type", "type": "enum", "choices": PERILS, "description": "The peril claimed under."},
        {
            "name": "amount_claimed",
            "type": "number",
            "minimum": 0,
            "maximum": 10_000_000,
            "description": "Amount the claimant asks for, in the policy currency.",
        },
        {"name": "incident_date", "type": "date", "description": "When the loss happened."},
        {"name": "report_date", "type": "date", "description": "When the claim was reported to us."},
        {
            "name": "policy_number",
            "type": "string",
            "max_length": 40,
            "description": "Policy the claim is made under.",
        },
        {"name": "police_report", "type": "boolean", "description": "Whether a police report was filed."},
        {
            "name": "photos",
            "type": "integer",
            "minimum": 0,
            "maximum": 500,
            "description": "Number of damage photos attached.",
        },
        {
            "name": "description",
            "type": "text",
            "required": False,
            "max_length": 5_000,
            "description": "The claimant's account of the loss.",
        },
        {"name": "claimant", "type": "string", "max_length": 200, "description": "Who filed the claim."},
    ],
    "tools": [
        {
            "name": "lookup_policy",
            "kind": "lookup",
            "table": "policies",
            "key_field": "policy_number",
            "match_column": "policy_number",
            "returns": ["holder", "status", "effective_date", "expiry_date", "coverages"],
            "description": "Find the policy in the register: holder, status, term and coverages.",
            "requires": [],
        },
        {
            "name": "check_coverage",
            "kind": "pack",
            "pack_tool": "check_coverage",
            "description": (
                "Was the policy in force on the incident date, is the peril covered, limit and deductible."
            ),
            "requires": ["lookup_policy"],
        },
        {
            "name": "claim_history",
            "kind": "pack",
            "pack_tool": "claim_history",
            "description": "Prior claims on the policy in the 12 months before the incident.",
            "requires": ["lookup_policy"],
        },
        {
            "name": "fraud_score",
            "kind": "pack",
            "pack_tool": "fraud_score",
            "description": "Fraud model score in [0, 1] with the signals that raised it.",
            "requires": ["check_coverage", "claim_history"],
        },
        {
            "name": "compute_payout",
            "kind": "expression",
            "expression": (
                "round(max(0, min(amount_claimed, check_coverage.limit) - check_coverage.deductible), 2)"
            ),
            "result_name": "payout",
            "description": "The claim capped at the coverage limit, minus the deductible.",
            "requires": ["check_coverage"],
        },
    ],
    "decisions": [
        {
            "name": "approve",
            "description": "Pay the claim.",
            "arguments": [{"name": "amount", "type": "number", "minimum": 0, "maximum": 10_000_000}],
        },
        {
            "name": "deny",
            "description": "Refuse the claim with a reason code.",
            "arguments": [{"name": "reason_code", "type": "enum", "choices": DENY_REASONS}],
        },
        {
            "name": "escalate",
            "description": "Hand the claim to a senior adjuster.",
            "arguments": [{"name": "reason", "type": "enum", "choices": ESCALATE_REASONS}],
        },
    ],
}
