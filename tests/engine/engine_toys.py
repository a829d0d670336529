"""A small refunds workflow for engine tests: every engine feature, none of the claims domain.

You are in the engine tests' toy box. ``toy_spec_dict`` has one tool of each kind (a lookup,
an expression that requires it, a pack tool) and two decisions; ``toy_environment`` wires it to
a tiny orders table and a deterministic pack tool.
"""

from __future__ import annotations

from typing import Any

from workflows.engine import Action, CaseData, Environment, Outcome, Rubric, ToolCall, WorkflowSpec


def toy_spec_dict() -> dict[str, Any]:
    return {
        "name": "refunds",
        "title": "Refund requests",
        "max_steps": 6,
        "case_fields": [
            {"name": "order_id", "type": "string"},
            {"name": "amount", "type": "number", "minimum": 0, "maximum": 10_000},
            {"name": "reason", "type": "enum", "choices": ["damaged", "late", "changed_mind"]},
            {"name": "urgent", "type": "boolean"},
            {"name": "ordered_on", "type": "date"},
            {"name": "items", "type": "integer", "minimum": 1, "maximum": 50},
            {"name": "note", "type": "text", "required": False},
        ],
        "tools": [
            {
                "name": "lookup_order",
                "kind": "lookup",
                "table": "orders",
                "key_field": "order_id",
                "match_column": "order_id",
                "returns": ["status", "total", "customer"],
            },
            {
                "name": "refundable",
                "kind": "expression",
                "expression": "lookup_order.found and lookup_order.status == 'delivered'",
                "result_name": "ok",
                "requires": ["lookup_order"],
            },
            {"name": "risk", "kind": "pack", "pack_tool": "risk", "requires": ["lookup_order"]},
        ],
        "decisions": [
            {"name": "approve", "arguments": [{"name": "amount", "type": "number", "minimum": 0}]},
            {
                "name": "deny",
                "arguments": [
                    {"name": "reason_code", "type": "enum", "choices": ["not_refundable", "unknown"]}
                ],
            },
        ],
    }


def toy_spec() -> WorkflowSpec:
    return WorkflowSpec.from_dict(toy_spec_dict())


def toy_tables() -> dict[str, list[dict[str, Any]]]:
    return {
        "orders": [
            {"order_id": "A-1", "status": "delivered", "total": 120.0, "customer": "Ada"},
            {"order_id": "A-2", "status": "cancelled", "total": 80.0, "customer": "Bob"},
        ]
    }


def risk_tool(call: ToolCall) -> dict[str, Any]:
    """Deterministic risk: high for big amounts, blows up for a poisoned note (to test errors)."""
    if call.case.get("note") == "explode":
        raise RuntimeError("risk model unavailable")
    return {
        "score": 0.9 if call.case["amount"] > 1_000 else 0.1,
        "band": "high" if call.case["amount"] > 1_000 else "low",
    }


def toy_rubric_dict() -> dict[str, Any]:
    return {
        "step_cost": 0.01,
        "shaping": {"lookup_order": 0.02},
        "criteria": [
            {"name": "right_outcome", "kind": "outcome_match", "weight": 3},
            {
                "name": "right_amount",
                "kind": "numeric_tolerance",
                "weight": 2,
                "when": "expected_decision == 'approve'",
                "params": {"argument": "amount", "relative": 0.02},
            },
            {"name": "looked_up", "kind": "required_step", "weight": 1, "params": {"tool": "lookup_order"}},
            {
                "name": "cites",
                "kind": "explanation_mentions",
                "weight": 1,
                "params": {"cite_tools": ["lookup_order"], "min_matches": 1},
            },
            {
                "name": "never_overpay",
                "kind": "expression",
                "weight": 0,
                "gate": True,
                "when": "decision == 'approve'",
                "params": {
                    "expression": "'lookup_order' in steps and arguments.amount <= lookup_order.total"
                },
            },
        ],
    }


def toy_rubric(spec: WorkflowSpec | None = None) -> Rubric:
    return Rubric.from_dict(toy_rubric_dict(), spec or toy_spec())


def toy_environment(*, rubric: Rubric | None = None, penalty: float = 0.05) -> Environment:
    spec = toy_spec()
    return Environment(
        spec,
        toy_tables(),
        rubric=rubric if rubric is not None else toy_rubric(spec),
        pack_tools={"risk": risk_tool},
        invalid_action_penalty=penalty,
    )


def toy_case(**overrides: Any) -> CaseData:
    fields: dict[str, Any] = {
        "order_id": "A-1",
        "amount": 100.0,
        "reason": "damaged",
        "urgent": False,
        "ordered_on": "2024-05-01",
        "items": 2,
        "note": "box crushed",
    }
    expected = overrides.pop("expected", Outcome("approve", {"amount": 100.0}))
    fields.update(overrides)
    return CaseData("toy-1", fields, expected)


def play(env: Environment, case: CaseData, actions: list[Action]) -> list[tuple[Any, float, bool, dict]]:
    """Reset on ``case`` and apply ``actions``; returns every step's (observation, reward, done, info)."""
    env.reset(case)
    return [env.step(action) for action in actions]
