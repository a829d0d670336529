"""Rubrics: every criterion kind, gates, `when`, skipped criteria, reasons, and errors by path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.engine_toys import play, toy_case, toy_environment, toy_rubric_dict, toy_spec
from workflows.engine import Action, Outcome, Rubric, RubricError, Score


def score_of(criteria: list[dict[str, Any]], actions: list[Action], **case: Any) -> Score:
    """Play ``actions`` on the toy workflow and score the trajectory with ``criteria``."""
    rubric = Rubric.from_dict({"criteria": criteria}, toy_spec())
    env = toy_environment(rubric=rubric)
    play(env, toy_case(**case), actions)
    assert env.score is not None, "the actions must end the episode"
    return env.score


LOOKUP = Action.tool("lookup_order")
RISK = Action.tool("risk")


def approve(amount: float, explanation: str = "") -> Action:
    return Action.decide("approve", {"amount": amount}, explanation)


def test_outcome_match_and_its_reasons() -> None:
    criteria = [{"name": "outcome", "kind": "outcome_match"}]
    right = score_of(criteria, [approve(100)])
    wrong = score_of(criteria, [Action.decide("deny", {"reason_code": "unknown"})])
    assert right.total == 1.0 and right.breakdown[0].reason == "decided approve; expected approve → correct"
    assert (
        wrong.total == 0.0 and wrong.breakdown[0].reason == "decided deny; expected approve → wrong outcome"
    )


def test_field_match_compares_the_expected_argument() -> None:
    criteria = [{"name": "reason", "kind": "field_match", "params": {"argument": "reason_code"}}]
    expected = Outcome("deny", {"reason_code": "not_refundable"})
    hit = score_of(criteria, [Action.decide("deny", {"reason_code": "not_refundable"})], expected=expected)
    miss = score_of(criteria, [Action.decide("deny", {"reason_code": "unknown"})], expected=expected)
    assert hit.breakdown[0].reason == "reason_code not_refundable; expected not_refundable → match"
    assert miss.breakdown[0].score == 0.0
    assert miss.breakdown[0].reason == "reason_code unknown; expected not_refundable → mismatch"
    # An expected outcome without that argument leaves the criterion out of the mean.
    other = score_of([*criteria, {"name": "o", "kind": "outcome_match"}], [approve(100)])
    assert not other.breakdown[0].applied and other.total == 1.0


@pytest.mark.parametrize(
    ("amount", "params", "passed", "reason"),
    [
        (4_120.0, {"relative": 0.02}, True, "approved 4,120.00; expected 4,100.00 ± 2% → within tolerance"),
        (4_200.0, {"relative": 0.02}, False, "approved 4,200.00; expected 4,100.00 ± 2% → off by 100.00"),
        (4_150.0, {"absolute": 50}, True, "approved 4,150.00; expected 4,100.00 ± 50.00 → within tolerance"),
        (4_140.0, {"absolute": 50, "relative": 0.01}, True, "± 1% or 50.00 → within tolerance"),
        (4_160.0, {"absolute": 50, "relative": 0.01}, False, "± 1% or 50.00 → off by 60.00"),
    ],
)
def test_numeric_tolerance_reasons(amount: float, params: dict[str, Any], passed: bool, reason: str) -> None:
    criteria = [{"name": "amount", "kind": "numeric_tolerance", "params": {"argument": "amount", **params}}]
    score = score_of(
        criteria, [approve(amount)], amount=5_000.0, expected=Outcome("approve", {"amount": 4_100.0})
    )
    result = score.breakdown[0]
    assert result.passed is passed and result.score == (1.0 if passed else 0.0)
    assert reason in result.reason


def test_required_forbidden_and_ordered_steps() -> None:
    criteria = [
        {"name": "looked_up", "kind": "required_step", "params": {"tool": "lookup_order"}},
        {"name": "risk_checked", "kind": "required_step", "params": {"tool": "risk"}},
        {"name": "no_refundable", "kind": "forbidden_step", "params": {"tool_or_decision": "refundable"}},
        {"name": "no_deny", "kind": "forbidden_step", "params": {"tool_or_decision": "deny"}},
        {
            "name": "lookup_first",
            "kind": "step_order",
            "params": {"before": "lookup_order", "after": "decision"},
        },
        {"name": "risk_before_deny", "kind": "step_order", "params": {"before": "risk", "after": "deny"}},
        {
            "name": "risk_before_approve",
            "kind": "step_order",
            "params": {"before": "risk", "after": "approve"},
        },
    ]
    score = score_of(criteria, [LOOKUP, Action.tool("refundable"), approve(100)])
    results = {result.name: result for result in score.breakdown}
    assert results["looked_up"].passed and results["looked_up"].reason == (
        "lookup_order called at step 1, before the decision"
    )
    assert not results["risk_checked"].passed and results["risk_checked"].reason == "risk was never called"
    assert (
        not results["no_refundable"].passed
        and "used at step 2 (forbidden)" in results["no_refundable"].reason
    )
    assert results["no_deny"].passed
    assert results["lookup_first"].passed and "→ in order" in results["lookup_first"].reason
    assert not results["risk_before_deny"].applied  # deny never happened: nothing to order
    assert not results["risk_before_approve"].passed
    assert results["risk_before_approve"].reason == "approve at step 3 without risk first"
    assert score.total == pytest.approx(3 / 6)


def test_explanation_mentions_terms_and_cited_facts() -> None:
    terms = [{"name": "t", "kind": "explanation_mentions", "params": {"terms": ["Delivered", "refund"]}}]
    assert score_of(terms, [approve(100, "The order was delivered.")]).total == 1.0
    assert score_of(terms, [approve(100, "Nothing relevant.")]).total == 0.0

    cite = [
        {
            "name": "cite",
            "kind": "explanation_mentions",
            "params": {"cite_tools": ["lookup_order", "risk"], "min_matches": 2},
        }
    ]
    both = score_of(
        cite, [LOOKUP, RISK, approve(100, "Order status delivered, total 120.00, risk band low.")]
    )
    assert both.total == 1.0
    assert both.breakdown[0].reason.startswith("cites 3 (status, total, band); needs 2")
    # Facts count only from tools that were called, and only as whole words or exact numbers.
    not_called = score_of(cite, [approve(100, "Status delivered, total 120, risk low.")])
    assert not_called.total == 0.0
    lookalikes = score_of(cite, [LOOKUP, approve(100, "Undelivered; total 1,200.00 or 12.")])
    assert lookalikes.total == 0.0
    half = score_of(cite, [LOOKUP, approve(100, "Customer ada, see file.")])
    assert half.total == 0.5 and not half.breakdown[0].passed


def test_expression_criteria_pass_fail_and_give_partial_credit() -> None:
    criteria = [
        {"name": "holds", "kind": "expression", "params": {"expression": "'lookup_order' in steps"}},
        {"name": "partial", "kind": "expression", "params": {"expression": "arguments.amount / 200"}},
        {"name": "broken", "kind": "expression", "params": {"expression": "risk.score < 0.5"}},
    ]
    score = score_of(criteria, [LOOKUP, approve(100)])
    results = {result.name: result for result in score.breakdown}
    assert results["holds"].score == 1.0 and results["holds"].reason == "holds: 'lookup_order' in steps"
    assert results["partial"].score == 0.5 and not results["partial"].passed
    assert results["broken"].score == 0.0
    assert results["broken"].reason.startswith("could not evaluate: name 'risk' is not defined")
    assert score.total == pytest.approx(1.5 / 3)


def test_a_failed_gate_zeroes_the_total_whatever_else_passed() -> None:
    rubric = toy_rubric_dict()["criteria"]
    fine = score_of(rubric, [LOOKUP, approve(100, "Total 120.00.")])
    overpaid = score_of(rubric, [LOOKUP, approve(500, "Total 120.00.")])
    blind = score_of(rubric, [approve(100, "Total 120.00.")])
    assert fine.total == 1.0 and not fine.gated
    gate = overpaid.criterion("never_overpay")
    assert overpaid.gated and overpaid.total == 0.0
    assert gate.gate and not gate.passed and gate.reason.startswith("GATE FAILED: does not hold")
    assert overpaid.criterion("right_outcome").passed  # the rest is still reported
    assert blind.gated and blind.total == 0.0


def test_when_restricts_a_criterion_and_leaves_it_out_of_the_mean() -> None:
    criteria = [
        {"name": "outcome", "kind": "outcome_match", "weight": 1},
        {
            "name": "only_urgent",
            "kind": "required_step",
            "weight": 5,
            "when": "urgent",
            "params": {"tool": "risk"},
        },
    ]
    calm = score_of(criteria, [approve(100)], urgent=False)
    urgent = score_of(criteria, [approve(100)], urgent=True)
    assert calm.total == 1.0
    assert calm.breakdown[1].applied is False and calm.breakdown[1].reason == "not applicable (when: urgent)"
    assert urgent.total == pytest.approx(1 / 6)


def test_criteria_needing_an_expected_outcome_are_skipped_without_one() -> None:
    criteria = [
        {"name": "outcome", "kind": "outcome_match", "weight": 4},
        {"name": "amount", "kind": "numeric_tolerance", "params": {"argument": "amount", "absolute": 1}},
        {"name": "looked_up", "kind": "required_step", "params": {"tool": "lookup_order"}},
    ]
    score = score_of(criteria, [LOOKUP, approve(100)], expected=None)
    assert [result.applied for result in score.breakdown] == [False, False, True]
    assert score.breakdown[0].reason == "skipped: the case has no expected outcome"
    assert score.total == 1.0


def test_rubric_round_trips_and_exposes_cost_and_shaping() -> None:
    rubric = Rubric.from_dict(toy_rubric_dict(), toy_spec())
    assert rubric.step_cost == 0.01 and rubric.shaping == {"lookup_order": 0.02}
    assert Rubric.from_dict(rubric.to_dict(), toy_spec()) == rubric


def test_rubric_errors_name_every_bad_criterion_by_path() -> None:
    bad = {
        "step_cost": -1,
        "shaping": {"oracle": 0.1},
        "criteria": [
            {"name": "a", "kind": "vibes"},
            {"name": "b", "kind": "field_match"},
            {"name": "c", "kind": "outcome_match", "weight": -2},
            {"name": "d", "kind": "required_step", "params": {"tool": "oracle"}},
            {"name": "e", "kind": "expression", "params": {"expression": "arguments.amount <"}},
            {"name": "f", "kind": "expression", "params": {"expression": "__import__('os')"}},
            {"name": "g", "kind": "numeric_tolerance", "params": {"argument": "reason_code"}},
            {"name": "h", "kind": "explanation_mentions", "params": {"min_matches": 0}},
            {"name": "a", "kind": "outcome_match", "when": "colour == 'red'"},
            {"name": "i", "kind": "step_order", "params": {"before": "risk", "after": "refund", "extra": 1}},
            {"name": "j", "kind": "forbidden_step", "params": {"tool_or_decision": "deny"}, "gate": "yes"},
        ],
    }
    with pytest.raises(RubricError) as raised:
        Rubric.from_dict(bad, toy_spec())
    paths = set(raised.value.paths())
    assert {
        "step_cost",
        "shaping.oracle",
        "criteria[0].kind",
        "criteria[1].params.argument",
        "criteria[2].weight",
        "criteria[3].params.tool",
        "criteria[4].params.expression",
        "criteria[5].params.expression",
        "criteria[6].params.argument",
        "criteria[6].params.tolerance",
        "criteria[7].params.terms",
        "criteria[7].params.min_matches",
        "criteria[8].name",
        "criteria[8].when",
        "criteria[9].params.after",
        "criteria[9].params.extra",
        "criteria[10].gate",
    } <= paths
    message = str(raised.value)
    assert "criteria[0].kind: unknown kind 'vibes'" in message
    assert "criteria[2].weight: must not be negative" in message
    assert "criteria[3].params.tool: unknown tool 'oracle'" in message
    assert "criteria[4].params.expression: does not compile: invalid syntax" in message
    assert "criteria[6].params.argument: argument 'reason_code' is not numeric" in message


def test_without_a_spec_only_the_structure_is_checked() -> None:
    rubric = Rubric.from_dict(
        {"criteria": [{"name": "d", "kind": "required_step", "params": {"tool": "anything"}}]}
    )
    assert rubric.criteria[0].params == {"tool": "anything", "before_decision": True}
    with pytest.raises(RubricError, match="criteria: must be a non-empty list"):
        Rubric.from_dict({"criteria": []})
    with pytest.raises(RubricError, match="at least one criterion needs a positive weight"):
        Rubric.from_dict({"criteria": [{"name": "g", "kind": "outcome_match", "weight": 0, "gate": True}]})


def test_malformed_expected_data_fails_the_criterion_not_the_episode() -> None:
    criteria = [
        {"name": "outcome", "kind": "outcome_match"},
        {"name": "amount", "kind": "numeric_tolerance", "params": {"argument": "amount", "absolute": 1}},
    ]
    score = score_of(criteria, [approve(100)], expected=Outcome("approve", {"amount": "a hundred"}))
    amount = score.criterion("amount")
    assert amount.applied and amount.score == 0.0
    assert amount.reason.startswith("could not judge: ValueError")
    assert score.total == 0.5
