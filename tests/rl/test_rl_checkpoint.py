"""Checkpoints describe themselves, survive a kill mid-save, and load back into a serving policy."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from tests.rl.rl_factories import small_config
from training.rl import CheckpointError, latest_checkpoint, load_policy, spec_hash, train
from training.rl.nets import flat_parameters
from workflows.engine import WorkflowSpec, run_episode


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    result = train(
        small_config(total_updates=4, checkpoint_every=2, keep_checkpoints=2),
        env_factory=world.env_factory,
        train_cases=world.train_cases,
        checkpoint_dir=root,
    )
    return root, result


def test_checkpoint_directory_describes_itself(trained, world):
    root, result = trained
    checkpoint = latest_checkpoint(root)
    assert checkpoint is not None and checkpoint.update == 4
    assert (root / "LATEST").read_text().strip() == checkpoint.path.name
    metadata = json.loads((checkpoint.path / "metadata.json").read_text())
    assert metadata["format_version"] == 1
    assert metadata["spec_hash"] == spec_hash(world.spec)
    assert metadata["update"] == 4 and metadata["global_step"] == result.global_step
    assert metadata["feature_schema"]["names"] == list(result.featurizer.names)
    assert metadata["metrics"]["optim/lr"] == result.metrics["optim/lr"]
    assert metadata["created_at"]
    weights = (checkpoint.path / "model.pt").read_bytes()
    assert metadata["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    config = json.loads((checkpoint.path / "config.json").read_text())
    assert config["total_updates"] == 4
    for name in ("optimizer.pt", "trainer_state.pt"):
        assert (checkpoint.path / name).is_file()
    # keep_checkpoints=2: the update-2 and update-4 checkpoints, nothing older, no temp dirs.
    assert sorted(p.name for p in root.iterdir()) == ["LATEST", "update-00000002", "update-00000004"]


def test_a_kill_mid_save_leaves_the_last_good_checkpoint_in_charge(trained, tmp_path):
    root, _ = trained
    copy = tmp_path / "ck"
    shutil.copytree(root, copy)
    # A save interrupted before its rename: a half-written temp directory, LATEST untouched.
    half = copy / ".tmp-update-00000006-deadbeef"
    half.mkdir()
    (half / "model.pt").write_bytes(b"partial")
    checkpoint = latest_checkpoint(copy)
    assert checkpoint is not None and checkpoint.update == 4
    # A save interrupted after the rename but before LATEST moved: LATEST still wins.
    shutil.copytree(copy / "update-00000004", copy / "update-00000006")
    assert latest_checkpoint(copy).update == 4


def test_corrupted_weights_are_detected_and_an_older_checkpoint_is_used(trained, tmp_path):
    root, _ = trained
    copy = tmp_path / "ck"
    shutil.copytree(root, copy)
    (copy / "update-00000004" / "model.pt").write_bytes(b"garbage")
    checkpoint = latest_checkpoint(copy)
    assert checkpoint is not None and checkpoint.update == 2
    from training.rl import read_checkpoint

    with pytest.raises(CheckpointError, match="sha256"):
        read_checkpoint(copy / "update-00000004")


def test_load_policy_serves_the_trained_network(trained, world):
    root, result = trained
    policy = load_policy(root, world.spec)
    assert torch.equal(flat_parameters(policy.model), flat_parameters(result.model))
    live = result.policy()
    env = world.env_factory()
    for case in world.test_cases[:15]:
        served = run_episode(env, policy, case)
        original = run_episode(world.env_factory(), live, case)
        assert [s.action.name for s in served.steps] == [s.action.name for s in original.steps]
        assert served.decision.arguments == original.decision.arguments


def test_load_policy_refuses_another_workflow_version(trained, world):
    root, _ = trained
    other = world.spec.to_dict()
    other["max_steps"] = 14
    with pytest.raises(CheckpointError, match="spec"):
        load_policy(root, WorkflowSpec.from_dict(other))


def test_an_empty_directory_has_no_checkpoint(tmp_path, world):
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(CheckpointError):
        load_policy(tmp_path, world.spec)
