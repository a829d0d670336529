"""The environment: hidden facts, requirements, penalties for bad actions, budget, determinism."""

from __future__ import annotations

import pytest

from tests.engine.engine_toys import (
    play,
    risk_tool,
    toy_case,
    toy_environment,
    toy_rubric,
    toy_spec,
    toy_tables,
)
from workflows.engine import (
    Action,
    CaseValidationError,
    EngineError,
    Environment,
    Outcome,
    RandomPolicy,
    SpecError,
    run_episode,
)

STEP_COST = 0.01
PENALTY = 0.05


def test_hidden_facts_are_absent_until_their_tool_is_called() -> None:
    env = toy_environment()
    observation = env.reset(toy_case())
    assert observation.revealed == {}
    assert "status" not in observation.case and "customer" not in observation.case
    assert observation.steps_left == 6 and observation.step_index == 0

    observation, _, _, info = env.step(Action.tool("lookup_order"))
    assert info["error"] is None
    assert observation.revealed == {
        "lookup_order": {"found": True, "status": "delivered", "total": 120.0, "customer": "Ada"}
    }
    observation, _, _, _ = env.step(Action.tool("refundable"))
    assert observation.revealed["refundable"] == {"ok": True}


def test_observations_already_handed_out_do_not_change_later() -> None:
    env = toy_environment()
    first = env.reset(toy_case())
    second, _, _, _ = env.step(Action.tool("lookup_order"))
    env.step(Action.tool("risk"))
    assert first.revealed == {}
    assert set(second.revealed) == {"lookup_order"}
    assert env.trajectory.steps[1].observation_before is second
    with pytest.raises(TypeError):
        second.revealed["risk"] = {}  # type: ignore[index]


def test_a_lookup_that_finds_nothing_says_so() -> None:
    env = toy_environment()
    env.reset(toy_case(order_id="Z-9"))
    observation, _, _, _ = env.step(Action.tool("lookup_order"))
    assert observation.revealed["lookup_order"] == {
        "found": False,
        "status": None,
        "total": None,
        "customer": None,
    }
    observation, _, _, _ = env.step(Action.tool("refundable"))
    assert observation.revealed["refundable"] == {"ok": False}


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (Action.tool("crystal_ball"), "unknown tool 'crystal_ball'"),
        (Action.tool("refundable"), "refundable requires lookup_order first"),
        (Action.tool("approve"), "unknown tool 'approve'"),
        (Action.decide("refund", {"amount": 5}), "invalid decision: decision: unknown decision 'refund'"),
        (Action.decide("approve", {"amount": -5}), "arguments.amount: must be at least 0"),
        (Action.decide("approve", {}), "arguments.amount: is required"),
        (Action.decide("deny", {"reason_code": "whim"}), "arguments.reason_code: must be one of"),
        (Action.decide("deny", {"reason_code": "unknown", "x": 1}), "arguments.x: unknown field"),
        (Action("teleport", "lookup_order"), "unknown action kind 'teleport'"),
        ("lookup_order", "not an Action"),
        (Action.tool(["lookup_order"]), "the action name must be a string"),  # type: ignore[arg-type]
    ],
)
def test_invalid_actions_are_penalised_recorded_and_never_raise(action: Action, error: str) -> None:
    env = toy_environment(penalty=PENALTY)
    env.reset(toy_case())
    observation, reward, done, info = env.step(action)
    assert error in info["error"]
    assert observation.last_error == info["error"]
    assert reward == pytest.approx(-(STEP_COST + PENALTY))
    assert done is False
    [step] = env.trajectory.steps
    assert step.error == info["error"] and step.reward == reward and step.result is None
    assert env.trajectory.tools_called() == []


def test_a_failing_pack_tool_is_an_error_not_a_crash() -> None:
    env = toy_environment()
    env.reset(toy_case(note="explode"))
    env.step(Action.tool("lookup_order"))
    _, reward, done, info = env.step(Action.tool("risk"))
    assert info["error"] == "risk failed: RuntimeError: risk model unavailable"
    assert reward == pytest.approx(-(STEP_COST + PENALTY))
    assert not done


def test_acting_after_the_end_is_penalised_and_recorded() -> None:
    env = toy_environment()
    results = play(
        env, toy_case(), [Action.tool("lookup_order"), Action.decide("approve", {"amount": 100}, "total 120")]
    )
    assert results[-1][2] is True
    _, reward, done, info = env.step(Action.tool("lookup_order"))
    assert done is True
    assert info["error"] == "the episode is over"
    assert reward == pytest.approx(-(STEP_COST + PENALTY))
    assert len(env.trajectory.steps) == 3


def test_exhausting_the_step_budget_ends_the_episode_scored_without_decision() -> None:
    env = toy_environment()
    env.reset(toy_case())
    outcomes = [env.step(Action.tool("lookup_order")) for _ in range(6)]
    assert [done for _, _, done, _ in outcomes] == [False] * 5 + [True]
    info = outcomes[-1][3]
    assert info["truncated"] is True
    assert env.trajectory.truncated and env.trajectory.decision is None
    score = info["score"]
    assert score.criterion("right_outcome").reason == "no decision (step budget exhausted); expected approve"
    assert outcomes[-1][0].steps_left == 0


def test_rewards_are_step_costs_plus_shaping_plus_the_final_score() -> None:
    env = toy_environment()
    results = play(
        env,
        toy_case(),
        [
            Action.tool("lookup_order"),
            Action.tool("lookup_order"),  # shaping is paid once per tool
            Action.decide("approve", {"amount": 100.0}, "Delivered order, total 120.00."),
        ],
    )
    rewards = [reward for _, reward, _, _ in results]
    score = results[-1][3]["score"]
    assert score.total == pytest.approx(1.0)
    assert rewards == pytest.approx([0.02 - STEP_COST, -STEP_COST, -STEP_COST + 1.0])
    assert env.trajectory.total_reward == pytest.approx(sum(rewards))
    assert env.score is score


def test_the_decision_is_recorded_with_coerced_arguments() -> None:
    env = toy_environment()
    play(env, toy_case(), [Action.decide("approve", {"amount": "99.5"}, "ok", confidence=0.7)])
    decision = env.trajectory.decision
    assert decision is not None
    assert decision.arguments == {"amount": 99.5} and decision.confidence == 0.7
    assert env.trajectory.first_index("approve") == 0


def test_episodes_are_deterministic() -> None:
    case = toy_case()
    runs = []
    for _ in range(2):
        env = toy_environment()
        trajectory = run_episode(env, RandomPolicy(env.spec, seed=11), case, seed=3)
        runs.append(trajectory.to_dict())
    assert runs[0] == runs[1]
    assert runs[0]["steps"], "the random policy took at least one step"


def test_reset_starts_a_fresh_trajectory_and_keeps_the_old_one() -> None:
    env = toy_environment()
    play(env, toy_case(), [Action.tool("lookup_order")])
    old = env.trajectory
    env.reset(toy_case(order_id="A-2"))
    assert env.trajectory is not old and env.trajectory.steps == []
    assert len(old.steps) == 1


def test_invalid_case_fields_are_refused_at_reset() -> None:
    env = toy_environment()
    with pytest.raises(CaseValidationError) as raised:
        env.reset(toy_case(amount="a lot"))
    assert raised.value.paths() == ["fields.amount"]


def test_stepping_before_reset_is_a_programming_error() -> None:
    with pytest.raises(EngineError, match="call reset"):
        toy_environment().step(Action.tool("lookup_order"))


def test_missing_tables_and_pack_tools_are_reported_with_paths() -> None:
    with pytest.raises(SpecError) as raised:
        Environment(toy_spec(), {}, pack_tools={})
    assert set(raised.value.paths()) == {"tools[0].table", "tools[2].pack_tool"}


def test_without_a_rubric_rewards_are_zero_and_no_score() -> None:
    env = Environment(toy_spec(), toy_tables(), pack_tools={"risk": risk_tool})
    results = play(env, toy_case(), [Action.tool("lookup_order"), Action.decide("approve", {"amount": 1})])
    assert [reward for _, reward, _, _ in results] == [0.0, 0.0]
    assert results[-1][3]["score"] is None


def test_trajectory_helpers() -> None:
    env = toy_environment(rubric=toy_rubric())
    play(
        env,
        toy_case(expected=Outcome("deny", {"reason_code": "unknown"})),
        [
            Action.tool("refundable"),  # error: requires lookup_order
            Action.tool("lookup_order"),
            Action.tool("risk"),
            Action.decide("deny", {"reason_code": "unknown"}),
        ],
    )
    trajectory = env.trajectory
    assert trajectory.tools_called() == ["lookup_order", "risk"]
    assert trajectory.first_index("refundable") is None
    assert trajectory.first_index("risk") == 2
    assert set(trajectory.revealed()) == {"lookup_order", "risk"}
    assert trajectory.to_dict()["steps"][0]["error"] == "refundable requires lookup_order first"
