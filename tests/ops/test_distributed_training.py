"""Data-parallel PPO: two torchrun processes on the CPU (gloo) train one policy; rank 0 writes the
usual checkpoint, which load_policy and policy_load read; ``manage.py train --nproc 2`` runs a job."""

from __future__ import annotations

import dataclasses
import functools
import json
import socket

import pytest
import torch
import torch.distributed as dist
from django.core.management import call_command

from tests.factories import make_actor, make_claims_workflow
from tests.rl.rl_factories import ClaimsWorld, small_config
from training.loading import policy_load
from training.models import JobStatus, TrainingJob, TrainingMetric
from training.rl import evaluate_policy, train
from training.rl.checkpoint import latest_checkpoint, load_policy, read_checkpoint
from training.rl.distributed import RANKS_DIR, launch, train_data_parallel
from training.rl.nets import build_model, flat_parameters
from workflows.engine import Environment, WorkflowSpec
from workflows.packs import get_pack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world() -> ClaimsWorld:
    return ClaimsWorld.build()


def _factory(world: ClaimsWorld):
    # What workflows.services.runs.environment_factory returns: a picklable partial of Environment.
    return functools.partial(
        Environment, world.spec, world.tables, rubric=world.rubric, pack_tools=get_pack("claims").pack_tools
    )


def test_two_processes_train_one_policy_and_rank_0_writes_a_loadable_checkpoint(world, tmp_path):
    config = small_config(
        total_updates=4, num_envs=16, rollout_steps=8, rollout_workers=1, seed=5, checkpoint_every=2
    )
    root = tmp_path / "checkpoints"
    seen: list[tuple[int, dict[str, float]]] = []
    first = launch(
        dataclasses.replace(config, total_updates=2),
        nproc=2,
        env_factory=_factory(world),
        train_cases=world.train_cases,
        checkpoint_dir=root,
        metrics_sink=lambda update, metrics: seen.append((update, metrics)),
    )
    assert (first.updates, first.resumed_from) == (2, None)
    # The same job run again with more updates resumes on both ranks from update 2.
    result = launch(
        config,
        nproc=2,
        env_factory=_factory(world),
        train_cases=world.train_cases,
        checkpoint_dir=root,
        metrics_sink=lambda update, metrics: seen.append((update, metrics)),
    )
    assert (result.updates, result.resumed_from, result.stopped) == (4, 2, False)

    # Metrics came from rank 0 after every update, over both ranks' rollouts.
    assert [update for update, _ in seen] == [1, 2, 3, 4]
    per_update_steps = 2 * config.num_envs * config.rollout_steps
    for update, metrics in seen:
        assert metrics["distributed/world_size"] == 2
        assert metrics["progress/env_steps"] == update * per_update_steps
    assert result.global_step == 4 * per_update_steps
    assert result.metrics == seen[-1][1]

    # Rank 0 wrote the checkpoints in the usual format; rank 1 only its own resume state.
    checkpoint = latest_checkpoint(root)
    assert checkpoint.path == root / "update-00000004" == result.checkpoint
    assert checkpoint.config["seed"] == 5  # rank 0's config is the job's config
    rank1 = read_checkpoint(root / RANKS_DIR / "rank-1" / "update-00000004")
    # Gradients were averaged: both ranks hold the same weights...
    assert torch.equal(flat_parameters(checkpoint.load_model()), flat_parameters(rank1.load_model()))
    # ...after collecting different rollouts (their own seeds, cases and in-flight episodes).
    assert rank1.config["seed"] == 6
    assert (
        checkpoint.load_trainer_state()["torch_generator"]
        .ne(rank1.load_trainer_state()["torch_generator"])
        .any()
    )
    # Training changed the parameters.
    initial = build_model(checkpoint.load_model().shape, seed=5)
    assert (flat_parameters(result.model) - flat_parameters(initial)).abs().max().item() > 1e-3

    # load_policy reads it and the policy acts on held-out cases, without a gate firing.
    policy = load_policy(root, world.spec)
    scores = evaluate_policy(policy, _factory(world), world.test_cases[:20])
    assert scores["episodes"] == 20 and scores["gates/triggered"] == 0


def test_one_rank_under_ddp_trains_exactly_as_the_plain_trainer(world, tmp_path):
    """The wrapper adds nothing but gradient averaging: with one rank it is the plain run, bit for bit."""
    config = small_config(total_updates=3, num_envs=8, rollout_steps=8, rollout_workers=1, seed=11)
    plain = train(
        config, env_factory=_factory(world), train_cases=world.train_cases, featurizer=world.featurizer
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        parallel = train_data_parallel(
            config, env_factory=_factory(world), train_cases=world.train_cases, featurizer=world.featurizer
        )
        with pytest.raises(ValueError, match="target_kl"):
            train_data_parallel(
                dataclasses.replace(config, target_kl=0.05),
                env_factory=_factory(world),
                train_cases=world.train_cases,
            )
    finally:
        dist.destroy_process_group()
    assert torch.equal(flat_parameters(plain.model), flat_parameters(parallel.model))


def test_outside_a_process_group_it_says_how_to_start(world):
    with pytest.raises(RuntimeError, match="torchrun"):
        train_data_parallel(small_config(), env_factory=_factory(world), train_cases=world.train_cases)


@pytest.mark.postgres
@pytest.mark.django_db
def test_manage_train_nproc_2_runs_the_job_and_records_a_version_policy_load_can_serve(tmp_path, capsys):
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor, cases=60)
    config = tmp_path / "job.json"
    ppo = {
        "total_updates": 4,
        "num_envs": 16,
        "rollout_steps": 8,
        "minibatches": 2,
        "hidden_size": 32,
        "fit_cases": 32,
        "rollout_workers": 1,
        "checkpoint_every": 2,
    }
    config.write_text(json.dumps({"ppo": ppo, "evaluate_limit": 5}))
    call_command(
        "train",
        "--workflow",
        workflow.slug,
        "--org",
        actor.organization.slug,
        "--config",
        str(config),
        "--nproc",
        "2",
    )
    assert "2 data-parallel processes" in capsys.readouterr().out

    job = TrainingJob.objects.get(workflow=workflow)
    assert job.status == JobStatus.SUCCEEDED and job.progress == 1.0
    metrics = list(TrainingMetric.objects.filter(job=job).order_by("update"))
    assert [m.update for m in metrics] == [1, 2, 3, 4]
    assert all(m.values["distributed/world_size"] == 2 for m in metrics)
    version = job.result_version
    assert version.artifact_path.endswith("update-00000004")
    spec = WorkflowSpec.from_dict(workflow.latest_version.spec)
    policy = policy_load(version, spec)
    assert type(policy).__name__ == "NeuralPolicy"
    assert version.evaluations.count() == 2  # validation and test


def test_manage_train_refuses_nproc_with_queue():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--queue"):
        call_command("train", "--workflow", "anything", "--nproc", "2", "--queue")
