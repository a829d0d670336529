"""Baseline and exploit policies, rules validation, run_episode, and rubric red-teaming."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.engine_toys import risk_tool, toy_case, toy_environment, toy_spec
from workflows.engine import (
    EXPLOIT_POLICIES,
    Action,
    AlwaysApprovePolicy,
    AlwaysDenyPolicy,
    Outcome,
    RandomPolicy,
    Rubric,
    RulesPolicy,
    SkipAllChecksPolicy,
    SpecError,
    rubric_redteam,
    run_episode,
)


def toy_rules() -> dict[str, Any]:
    return {
        "checks": ["lookup_order", "refundable"],
        "rules": [
            {
                "when": "not refundable.ok",
                "decision": "deny",
                "arguments": {"reason_code": "'not_refundable'"},
                "explanation": "Order {order_id} is {lookup_order.status}.",
                "confidence": 0.9,
            },
            {
                "when": "risk.score > 0.5",  # risk is never checked: this rule cannot apply
                "decision": "deny",
                "arguments": {"reason_code": "'unknown'"},
            },
        ],
        "default": {
            "decision": "approve",
            "arguments": {"amount": "min(amount, lookup_order.total)"},
            "explanation": "Refunding {amount} of {lookup_order.total} to {lookup_order.customer}.",
            "confidence": 0.8,
        },
    }


def test_rules_policy_runs_its_checks_then_the_first_matching_rule_decides() -> None:
    env = toy_environment()
    policy = RulesPolicy(env.spec, toy_rules())
    trajectory = run_episode(env, policy, toy_case(order_id="A-2"))
    assert [step.action.name for step in trajectory.steps] == ["lookup_order", "refundable", "deny"]
    decision = trajectory.decision
    assert decision is not None
    assert decision.arguments == {"reason_code": "not_refundable"}
    assert decision.explanation == "Order A-2 is cancelled."
    assert decision.confidence == 0.9
    assert decision.probabilities["deny"] == 0.9
    assert sum(decision.probabilities.values()) == pytest.approx(1.0)


def test_rules_policy_falls_back_to_default_past_rules_it_cannot_evaluate() -> None:
    env = toy_environment()
    trajectory = run_episode(env, RulesPolicy(env.spec, toy_rules()), toy_case(amount=500.0))
    decision = trajectory.decision
    assert decision is not None and decision.name == "approve"
    assert decision.arguments == {"amount": 120.0}
    assert decision.explanation == "Refunding 500.00 of 120.00 to Ada."
    assert all(step.error is None for step in trajectory.steps)


def test_rules_policy_validation_names_every_problem_by_path() -> None:
    rules = toy_rules()
    rules["checks"] = ["refundable", "oracle"]
    rules["rules"][0]["when"] = "refundable.ok and __import__('os')"
    rules["rules"][1]["decision"] = "refund"
    rules["rules"].append(
        {"when": "True", "decision": "deny", "arguments": {"reason": "'x'"}, "confidence": 2}
    )
    rules["rules"].append({"decision": "approve", "arguments": {"amount": "amount +"}})
    del rules["default"]
    with pytest.raises(SpecError) as raised:
        RulesPolicy.validate(toy_spec(), rules)
    assert set(raised.value.paths()) == {
        "checks[0]",
        "checks[1]",
        "rules[0].when",
        "rules[1].decision",
        "rules[2].arguments.reason_code",
        "rules[2].arguments.reason",
        "rules[2].confidence",
        "rules[3].when",
        "rules[3].arguments.amount",
        "default",
    }
    assert "checks[0]: refundable requires lookup_order, list it earlier" in str(raised.value)


def test_random_policy_is_reproducible_from_its_seed_and_always_valid() -> None:
    env = toy_environment()
    policy = RandomPolicy(env.spec, seed=5)
    first = [run_episode(env, policy, toy_case(), seed=n).to_dict() for n in range(20)]
    second = [run_episode(env, policy, toy_case(), seed=n).to_dict() for n in range(20)]
    assert first == second
    decisions = [trajectory["decision"] for trajectory in first if trajectory["decision"]]
    assert decisions, "some random episodes end with a decision"
    assert len({decision["name"] for decision in decisions}) == 2


def test_exploit_policies_decide_at_once_from_case_fields() -> None:
    spec = toy_spec()
    observation = toy_environment().reset(toy_case(amount=750.0))
    approve = AlwaysApprovePolicy(spec).act(observation)
    assert (approve.name, approve.arguments) == ("approve", {"amount": 750.0})
    deny = AlwaysDenyPolicy(spec).act(observation)
    assert (deny.name, deny.arguments) == ("deny", {"reason_code": "not_refundable"})
    skip = SkipAllChecksPolicy(spec).act(observation)
    assert skip.name == "approve" and skip.arguments == {"amount": 750.0}
    assert skip.confidence >= 0.95 and "All checks passed" in skip.explanation


@pytest.mark.parametrize("name", sorted(EXPLOIT_POLICIES))
def test_every_exploit_policy_plays_valid_episodes(name: str) -> None:
    env = toy_environment()
    trajectory = run_episode(env, EXPLOIT_POLICIES[name](env.spec), toy_case())
    assert trajectory.decision is not None
    assert all(step.error is None for step in trajectory.steps)


def test_redteam_flags_exploits_that_a_weak_rubric_rewards() -> None:
    spec = toy_spec()
    weak = Rubric.from_dict(
        {
            "criteria": [
                {"name": "sounds_sure", "kind": "explanation_mentions", "params": {"terms": ["checks"]}}
            ]
        },
        spec,
    )
    cases = [
        toy_case(),
        toy_case(order_id="A-2", expected=Outcome("deny", {"reason_code": "not_refundable"})),
    ]
    env = toy_environment()
    report = rubric_redteam(spec, weak, cases, env.tables, pack_tools={"risk": risk_tool}, threshold=0.5)
    assert "skip_all_checks" in report.flagged and not report.passed
    assert report.scores["skip_all_checks"] == 1.0
    assert report.reference_score is None


def test_redteam_passes_a_rubric_that_checks_outcome_and_process() -> None:
    spec = toy_spec()
    env = toy_environment()
    cases = [
        toy_case(amount=500.0, expected=Outcome("approve", {"amount": 120.0})),
        toy_case(order_id="A-2", expected=Outcome("deny", {"reason_code": "not_refundable"})),
    ]
    report = rubric_redteam(
        spec,
        env.rubric,  # type: ignore[arg-type]
        cases,
        env.tables,
        pack_tools={"risk": risk_tool},
        reference_policy=RulesPolicy(spec, toy_rules()),
    )
    assert report.flagged == [], report.scores
    assert report.reference_score is not None and report.reference_score > 0.9
    assert report.to_dict()["threshold"] == 0.5


def test_run_episode_resets_the_policy_for_each_case() -> None:
    env = toy_environment()
    policy = RulesPolicy(env.spec, toy_rules())
    first = run_episode(env, policy, toy_case())
    second = run_episode(env, policy, toy_case())
    assert [s.action.name for s in first.steps] == [s.action.name for s in second.steps]
    assert isinstance(first.steps[0].action, Action)
