"""PPOConfig: every field documented, invalid values refused with the field's name."""

from __future__ import annotations

import dataclasses

import pytest

from training.rl import PPOConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", 0.0),
        ("learning_rate", -1e-3),
        ("gamma", 0.0),
        ("gamma", 1.5),
        ("gae_lambda", 1.1),
        ("clip_coef", 0.0),
        ("entropy_coef", -0.1),
        ("value_coef", -1.0),
        ("max_grad_norm", 0.0),
        ("total_updates", 0),
        ("num_envs", 0),
        ("rollout_steps", 0),
        ("update_epochs", 0),
        ("hidden_size", 0),
        ("activation", "sigmoid"),
        ("curriculum_threshold", 0.0),
        ("curriculum_window", 0),
        ("checkpoint_every", 0),
        ("keep_checkpoints", 0),
        ("target_kl", 0.0),
        ("max_seconds", -5.0),
        ("torch_threads", -1),
    ],
)
def test_invalid_config_value_raises_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PPOConfig(**{field: value})


def test_batch_must_split_into_minibatches():
    with pytest.raises(ValueError, match="minibatches"):
        PPOConfig(num_envs=10, rollout_steps=3, minibatches=4)
    assert PPOConfig(num_envs=10, rollout_steps=4, minibatches=4).minibatch_size == 10


def test_every_field_has_help_and_the_config_is_frozen():
    helps = PPOConfig.help()
    assert set(helps) == {f.name for f in dataclasses.fields(PPOConfig)}
    assert all(len(text) > 10 for text in helps.values())
    config = PPOConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.learning_rate = 1.0  # type: ignore[misc]


def test_config_round_trips_through_a_dict_and_refuses_unknown_keys():
    config = PPOConfig(learning_rate=3e-4, curriculum=True)
    assert PPOConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="learnin_rate"):
        PPOConfig.from_dict({"learnin_rate": 1e-3})
