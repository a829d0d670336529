"""Rollouts: in-process and in worker processes, reproducible either way, and a safe fallback."""

from __future__ import annotations

import types

import numpy as np

from tests.rl.rl_factories import small_config
from training.rl import ActionLayout, train
from training.rl import rollout as rollout_module
from training.rl.nets import ModelShape, build_model
from training.rl.rollout import LocalRollout, RolloutPool, RolloutSettings, make_rollout


def _comparable(history):
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]


def _run(world, **overrides):
    config = small_config(total_updates=3, seed=4, **overrides)
    return train(config, env_factory=world.env_factory, train_cases=world.train_cases)


def test_zero_and_one_worker_give_the_same_run(world):
    assert _comparable(_run(world, rollout_workers=0).history) == _comparable(
        _run(world, rollout_workers=1).history
    )


def test_worker_processes_are_reproducible(world):
    first = _run(world, rollout_workers=2)
    second = _run(world, rollout_workers=2)
    assert _comparable(first.history) == _comparable(second.history)
    assert first.metrics["episode/count"] > 0


def _settings(world):
    layout = ActionLayout(world.spec, world.featurizer)
    shape = ModelShape(
        world.featurizer.size, layout.num_actions, tuple(layout.head_sizes), tuple(layout.head_owner), 16
    )
    settings = RolloutSettings(
        world.env_factory, world.featurizer, layout, world.train_cases, False, 0.9, 10, 0
    )
    return settings, build_model(shape, seed=0)


def test_pool_collects_every_environment_once_per_step(world):
    settings, model = _settings(world)
    pool = make_rollout(settings, workers=2, num_envs=6, model=model)
    try:
        assert isinstance(pool, RolloutPool)
        batch = pool.collect(model, 4, 0)
        assert batch.features_T_N_F.shape == (4, 6, world.featurizer.size)
        assert batch.actions_T_N.shape == batch.rewards_T_N.shape == (4, 6)
        assert batch.next_value_N.shape == (6,)
        # Sampled actions are allowed by the mask recorded with them.
        for t in range(4):
            for n in range(6):
                assert batch.masks_T_N_M[t, n, batch.actions_T_N[t, n]]
        assert np.isfinite(batch.logp_T_N).all()
    finally:
        pool.close()


def test_a_daemonic_process_falls_back_to_the_local_rollout(world, monkeypatch):
    settings, model = _settings(world)
    fake = types.SimpleNamespace(daemon=True)
    monkeypatch.setattr(rollout_module.multiprocessing, "current_process", lambda: fake)
    rollout = make_rollout(settings, workers=2, num_envs=4, model=model)
    assert isinstance(rollout, LocalRollout)
    assert "daemonic" in rollout.fallback_reason
