"""The Gymnasium adapter passes Gymnasium's own checker and exposes the action mask."""

from __future__ import annotations

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from training.rl.gym_adapter import WorkflowGymEnv  # noqa: E402


@pytest.fixture
def gym_env(world, featurizer):
    return WorkflowGymEnv(world.env_factory, world.test_cases, featurizer, seed=0)


def test_adapter_passes_the_gymnasium_env_checker(gym_env):
    check_env(gym_env, skip_render_check=True)


def test_spaces_follow_the_featurizer_and_the_action_layout(gym_env, featurizer):
    assert gym_env.observation_space.shape == (featurizer.size,)
    layout = gym_env.layout
    assert list(gym_env.action_space.nvec) == [layout.num_actions, *layout.head_sizes]
    observation, info = gym_env.reset(seed=1)
    assert gym_env.observation_space.contains(observation)
    assert info["action_mask"].shape == (int(sum(gym_env.action_space.nvec)),)
    assert info["action_mask"].dtype == bool


def test_masked_random_actions_finish_episodes_without_errors(gym_env):
    rng = np.random.default_rng(0)
    for episode in range(20):
        _, info = gym_env.reset(seed=episode)
        done = False
        while not done:
            mask = info["action_mask"]
            nvec = gym_env.action_space.nvec
            action, offset = [], 0
            for size in nvec:
                allowed = np.flatnonzero(mask[offset : offset + size])
                action.append(int(rng.choice(allowed)) if len(allowed) else 0)
                offset += size
            _, _, done, truncated, info = gym_env.step(np.array(action))
            assert info["error"] is None, info["error"]
            assert not truncated
        assert 0.0 <= info["score"] <= 1.0
        assert "decision" in info and "criteria" in info


def test_an_unmasked_invalid_action_is_penalised_not_raised(gym_env):
    _, info = gym_env.reset(seed=0)
    names = list(gym_env.layout.action_names)
    action = np.zeros(len(gym_env.action_space.nvec), dtype=np.int64)
    action[0] = names.index("fraud_score")  # requires check_coverage and claim_history first
    _, reward, done, _, info = gym_env.step(action)
    assert info["error"] and not done
    assert reward < 0
