"""NeuralPolicy is an engine Policy: valid Actions, explanations that cite facts, probabilities."""

from __future__ import annotations

import math

import pytest

from tests.rl.rl_factories import small_config
from training.rl import NeuralPolicy, train
from workflows.engine import Action, Policy, run_episode


@pytest.fixture(scope="module")
def policy(world) -> NeuralPolicy:
    result = train(
        small_config(total_updates=3), env_factory=world.env_factory, train_cases=world.train_cases
    )
    return result.policy()


def test_neural_policy_implements_the_engine_protocol(policy):
    assert isinstance(policy, Policy)


def test_every_action_is_a_valid_engine_action_with_probabilities(policy, world):
    env = world.env_factory()
    for case in world.test_cases[:30]:
        policy.reset(0)
        observation = env.reset(case)
        done = False
        while not done:
            action = policy.act(observation)
            assert isinstance(action, Action)
            assert action.kind in ("tool", "decision")
            assert 0.0 < action.confidence <= 1.0
            assert set(action.probabilities) == set(world.spec.action_names)
            assert math.isclose(sum(action.probabilities.values()), 1.0, abs_tol=1e-4)
            if action.is_decision:
                world.spec.validate_decision(action.name, action.arguments)  # raises if invalid
            observation, _, done, info = env.step(action)
            assert info["error"] is None, info["error"]


def test_decision_explanations_name_the_facts_the_policy_saw(policy, world):
    env = world.env_factory()
    for case in world.test_cases[:30]:
        trajectory = run_episode(env, policy, case)
        decision = trajectory.decision
        assert decision is not None
        text = decision.explanation
        assert decision.name in text and "confidence" in text
        revealed = trajectory.revealed()
        if not revealed:
            assert "no tool was called" in text
            continue
        for tool, result in revealed.items():
            assert f"{tool}:" in text
            shown = [key for key, value in result.items() if value is not None]
            assert any(key in text for key in shown)
        if decision.name == "approve":
            assert "amount" in text and " = " in text  # cites where the amount came from


def test_sampling_policy_is_reproducible_with_a_seed(world, policy):
    sampler = NeuralPolicy(policy.model, policy.featurizer, world.spec, deterministic=False)
    env = world.env_factory()
    runs = []
    for _ in range(2):
        names = []
        for index, case in enumerate(world.test_cases[:20]):
            trajectory = run_episode(env, sampler, case, seed=index)
            names.append(
                [(s.action.name, tuple(sorted(s.action.arguments.items()))) for s in trajectory.steps]
            )
        runs.append(names)
    assert runs[0] == runs[1]


def test_a_featurizer_for_another_network_is_refused(world, policy):
    from training.rl import Featurizer

    smaller = Featurizer.from_dict(world.spec, {**policy.featurizer.to_dict()})
    smaller.size = policy.featurizer.size - 1
    with pytest.raises(ValueError, match="features"):
        NeuralPolicy(policy.model, smaller, world.spec)
