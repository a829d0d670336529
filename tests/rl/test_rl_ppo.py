"""PPO training: it learns, it is reproducible, and it resumes exactly where it stopped."""

from __future__ import annotations

import math

import pytest
import torch

from tests.rl.rl_factories import small_config
from training.rl import evaluate_policy, train
from training.rl.nets import flat_parameters
from workflows.engine import RandomPolicy

REQUIRED_METRICS = (
    "reward/mean",
    "reward/right_outcome",
    "episode/length",
    "decision/accuracy",
    "loss/policy",
    "loss/value",
    "loss/entropy",
    "policy/kl",
    "policy/clip_frac",
    "optim/lr",
    "time/steps_per_s",
    "curriculum/level",
)


def _run(world, config, **kwargs):
    return train(config, env_factory=world.env_factory, train_cases=world.train_cases, **kwargs)


def _comparable(history):
    return [{k: v for k, v in metrics.items() if not k.startswith("time/")} for metrics in history]


def test_a_short_run_learns_well_above_random_and_moves_the_parameters(world):
    config = small_config(total_updates=24, num_envs=32, hidden_size=64, entropy_coef=0.02, seed=3)
    seen: list[tuple[int, dict[str, float]]] = []
    result = _run(world, config, metrics_sink=lambda step, m: seen.append((step, m)))
    untrained = _run(
        world, small_config(total_updates=1, num_envs=32, hidden_size=64, learning_rate=1e-12, seed=3)
    )
    moved = (flat_parameters(result.model) - flat_parameters(untrained.model)).abs().max().item()
    assert moved > 1e-2, "training did not change the parameters"

    random_score = evaluate_policy(RandomPolicy(world.spec, seed=0), world.env_factory, world.test_cases)
    trained_score = evaluate_policy(result.policy(), world.env_factory, world.test_cases)
    assert trained_score["score/mean"] > random_score["score/mean"] + 0.3, (
        trained_score["score/mean"],
        random_score["score/mean"],
    )
    assert trained_score["gates/triggered"] == 0
    # Metrics are reported after every update, namespaced, and the reward went up.
    assert [step for step, _ in seen] == list(range(1, 25))
    for name in REQUIRED_METRICS:
        assert name in seen[-1][1], name
        assert math.isfinite(seen[-1][1][name])
    first = sum(m["reward/mean"] for _, m in seen[:3]) / 3
    last = sum(m["reward/mean"] for _, m in seen[-3:]) / 3
    assert last > first + 0.15, (first, last)


def test_same_config_and_seed_give_identical_metrics(world):
    config = small_config(total_updates=3, seed=11)
    first = _run(world, config)
    second = _run(world, config)
    assert _comparable(first.history) == _comparable(second.history)
    assert torch.equal(flat_parameters(first.model), flat_parameters(second.model))
    other = _run(world, small_config(total_updates=3, seed=12))
    assert _comparable(other.history) != _comparable(first.history)


def test_resume_continues_at_the_saved_update_with_the_saved_optimizer_state(world, tmp_path):
    config = small_config(total_updates=6, checkpoint_every=3, seed=5)
    uninterrupted = _run(world, config, checkpoint_dir=tmp_path / "straight")

    calls = {"n": 0}

    def kill_after_three():
        calls["n"] += 1
        return calls["n"] > 3  # polled before each update: updates 1-3 run, then "killed"

    interrupted = _run(world, config, checkpoint_dir=tmp_path / "killed", should_stop=kill_after_three)
    assert interrupted.stopped and interrupted.updates == 3

    from training.rl import latest_checkpoint

    saved = latest_checkpoint(tmp_path / "killed")
    assert saved is not None and saved.update == 3
    optimizer_state = saved.load_optimizer_state()

    resumed_steps: list[int] = []
    resumed = _run(
        world,
        config,
        checkpoint_dir=tmp_path / "killed",
        metrics_sink=lambda step, m: resumed_steps.append(step),
    )
    assert resumed.resumed_from == 3
    assert resumed_steps == [4, 5, 6]
    # The resumed run's first update started from the saved Adam state (same step counts).
    first_param_state = optimizer_state["state"][0]
    assert int(first_param_state["step"]) == 3 * config.update_epochs * config.minibatches
    # ...and it ends exactly where the uninterrupted run ended.
    assert _comparable(resumed.history) == _comparable(uninterrupted.history[3:])
    assert torch.equal(flat_parameters(resumed.model), flat_parameters(uninterrupted.model))
    final_straight = latest_checkpoint(tmp_path / "straight")
    final_resumed = latest_checkpoint(tmp_path / "killed")
    assert final_straight is not None and final_resumed is not None
    straight_opt = final_straight.load_optimizer_state()
    resumed_opt = final_resumed.load_optimizer_state()
    assert straight_opt["param_groups"] == resumed_opt["param_groups"]
    for key, value in straight_opt["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, resumed_opt["state"][key][name]), (key, name)


def test_resume_is_the_default_and_can_be_turned_off(world, tmp_path):
    config = small_config(total_updates=2, seed=1)
    _run(world, config, checkpoint_dir=tmp_path)
    again = _run(world, small_config(total_updates=3, seed=1), checkpoint_dir=tmp_path)
    assert again.resumed_from == 2 and len(again.history) == 1
    fresh = _run(world, small_config(total_updates=3, seed=1), checkpoint_dir=tmp_path, resume=False)
    assert fresh.resumed_from is None and len(fresh.history) == 3


def test_should_stop_cancels_before_the_next_update(world):
    result = _run(world, small_config(total_updates=50), should_stop=lambda: True)
    assert result.stopped and result.updates == 0 and result.history == []


def test_empty_training_cases_are_refused(world):
    with pytest.raises(ValueError, match="train_cases"):
        train(small_config(), env_factory=world.env_factory, train_cases=[])
