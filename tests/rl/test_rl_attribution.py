"""Feature attributions: which inputs drove a neural policy's choice, in the workflow's words."""

from __future__ import annotations

import pytest
import torch

from tests.rl.rl_factories import small_config
from training.rl import NeuralPolicy, train
from training.rl.attribution import integrated_gradients
from workflows.engine import run_episode


@pytest.fixture(scope="module")
def policy(world) -> NeuralPolicy:
    result = train(
        small_config(total_updates=3), env_factory=world.env_factory, train_cases=world.train_cases
    )
    return result.policy()


def _decision_observation(policy, world):
    env = world.env_factory()
    trajectory = run_episode(env, policy, world.test_cases[0], seed=0)
    return trajectory.steps[-1].observation_before, trajectory.steps[-1].action.name


def test_attributions_name_workflow_features_and_sum_to_the_log_probability_change(policy, world):
    observation, action = _decision_observation(policy, world)
    everything = integrated_gradients(policy, observation, action, steps=64, top_k=policy.featurizer.size)
    assert everything, "a trained network's choice depends on some input"
    assert {a["feature"] for a in everything} <= set(policy.featurizer.names)
    # Completeness: attributions add up to log pi(a|x) - log pi(a|0), up to the midpoint sum's error.
    names = policy.layout.action_names
    features = torch.from_numpy(policy.featurizer.transform(observation)).float()[None]
    mask = torch.from_numpy(policy.layout.mask(observation))[None]
    with torch.no_grad():
        at_x = policy.model.action_log_probs(features, mask)[0, names.index(action)]
        at_0 = policy.model.action_log_probs(torch.zeros_like(features), mask)[0, names.index(action)]
    total = sum(a["attribution"] for a in everything)
    assert total == pytest.approx(float(at_x - at_0), abs=0.02)


def test_top_attributions_are_ordered_by_magnitude_and_exposed_on_the_policy(policy, world):
    observation, action = _decision_observation(policy, world)
    top = policy.feature_attributions(observation, action, top_k=4)
    assert 0 < len(top) <= 4
    magnitudes = [abs(a["attribution"]) for a in top]
    assert magnitudes == sorted(magnitudes, reverse=True)
    with pytest.raises(ValueError):
        integrated_gradients(policy, observation, "pay_everyone")
