"""Data-parallel PPO: the trainer of ``ppo.py`` in several processes under DistributedDataParallel.

You are in the RL side's scale-out wing. Two entry points:

- :func:`train_data_parallel` runs *inside* each rank of an initialised process group (``torchrun``
  sets one up; so does :func:`main`). It calls :func:`training.rl.ppo.train` unchanged but for three
  things: each rank's seed is ``seed + rank``, so every rank samples its own cases and actions and
  collects its own rollouts; the update pass goes through ``DistributedDataParallel``
  (``prepare_update``), which broadcasts rank 0's weights at the start and averages the gradients
  of all ranks during every backward pass, so after each optimiser step every rank holds the same
  weights; and the decision to stop (``should_stop``, ``max_seconds``) is agreed by all ranks before
  each update, so none is left waiting in a collective.
- :func:`launch` is a drop-in for ``train`` in the calling process: it writes the problem to a file,
  runs ``torchrun --standalone --nproc-per-node N -m training.rl.distributed <file>``, relays rank
  0's metrics to ``metrics_sink`` as they come, turns ``should_stop()`` into a stop file the ranks
  watch, and returns a :class:`~training.rl.ppo.TrainResult` built from the final checkpoint.

Checkpoints: rank 0 writes them at ``checkpoint_dir`` in the usual format (``checkpoint.py``; what
``load_policy`` and ``policy_load`` read). Every other rank keeps its own resume state (its
in-flight episodes, sampler and generator states, next to a copy of the shared weights) under
``checkpoint_dir/ranks/rank-<k>``, so an interrupted run resumes exactly on every rank; ranks whose
latest checkpoints disagree refuse to start rather than train out of step.

How this departs from single-process PPO:

- The batch per update is ``nproc * num_envs * rollout_steps``, seen as ``nproc`` shards: advantages
  are normalised per rank's minibatch, and a minibatch step averages the ranks' gradients, which
  equals the gradient of the union of their minibatches.
- The featurizer is fitted once from the base seed (the same on every rank, as in a plain run).
- Rank 0 reports the episode metrics (``reward/*``, ``episode/*``, ``decision/accuracy``) over the
  episodes of all ranks, ``progress/env_steps`` summed over ranks and ``distributed/world_size``;
  the losses are rank 0's.
- ``target_kl`` is refused: ranks would stop their epochs at different minibatches and wait forever.
- Tensors stay on the CPU (these networks are small; the rollouts are plain Python), so the backend
  is gloo.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from workflows.engine import CaseData, Environment

from .checkpoint import CheckpointError, latest_checkpoint
from .features import Featurizer, collect_observations
from .nets import ActorCritic
from .ppo import MetricsSink, PPOConfig, TrainResult, train
from .rollout import _die_with_parent

__all__ = ["launch", "main", "train_data_parallel"]

RANKS_DIR = "ranks"
WORK_DIR = ".distributed"  # launch()'s files inside the checkpoint directory
PROBLEM_FILE = "problem.pt"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
STOP_FILE = "STOP"
LOG_FILE = "torchrun.log"
# Averaged over all ranks' episodes, weighted by how many episodes each rank finished.
_EPISODE_MEANS = (
    "reward/mean",
    "reward/rubric",
    "episode/length",
    "episode/gated",
    "episode/truncated",
    "decision/accuracy",
)


class _UpdatePass(nn.Module):
    """``ActorCritic.evaluate`` as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(self, model: ActorCritic) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        features_B_F: torch.Tensor,
        mask_B_M: torch.Tensor,
        action_B: torch.Tensor,
        heads_B_H: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.evaluate(features_B_F, mask_B_M, action_B, heads_B_H)


def _through_ddp(model: ActorCritic) -> DistributedDataParallel:
    # Broadcasts rank 0's parameters (and the constant index buffers) now; averages gradients across
    # ranks in every backward pass. The buffers never change, so forward passes need not resend them.
    return DistributedDataParallel(_UpdatePass(model), forward_sync_buffers=False)


def _fit_featurizer(
    config: PPOConfig, env_factory: Callable[[], Environment], cases: list[CaseData]
) -> Featurizer:
    """The featurizer ``ppo.train`` would fit for ``config`` (same seed, same sample of cases)."""
    probe = env_factory()
    picks = np.random.Generator(np.random.PCG64(config.seed)).permutation(len(cases))
    sample = [cases[int(i)] for i in picks[: config.fit_cases]]
    return Featurizer.fit(probe.spec, collect_observations(probe, sample))


def _agree_on_resume_point(directory: Path | None, resume: bool, world_size: int) -> None:
    latest = (
        latest_checkpoint(directory) if (resume and directory is not None and directory.is_dir()) else None
    )
    mine = torch.tensor([latest.update if latest is not None else -1], dtype=torch.int64)
    points = [torch.zeros_like(mine) for _ in range(world_size)]
    dist.all_gather(points, mine)
    updates = [int(point.item()) for point in points]
    if len(set(updates)) > 1:
        found = ", ".join(f"rank {r}: {u if u >= 0 else 'none'}" for r, u in enumerate(updates))
        raise CheckpointError(
            f"the ranks' latest checkpoints are at different updates ({found}); "
            "training them on would put them out of step. Resume with the world size the run started "
            "with, or remove the checkpoint directory to start over."
        )


def _merge_episode_metrics(metrics: dict[str, float], world_size: int) -> dict[str, float]:
    """Rank 0's metrics with the episode figures taken over every rank (a collective: all ranks call it)."""
    count = float(metrics.get("episode/count", 0.0))
    values = []
    for name in _EPISODE_MEANS:
        present = name in metrics
        values += [metrics[name] * count if present else 0.0, count if present else 0.0]
    values += [count, float(metrics.get("progress/env_steps", 0.0))]
    totals = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(totals)
    merged = dict(metrics)
    for i, name in enumerate(_EPISODE_MEANS):
        weighted, weight = totals[2 * i].item(), totals[2 * i + 1].item()
        if weight > 0:
            merged[name] = weighted / weight
    merged["episode/count"] = totals[-2].item()
    merged["progress/env_steps"] = totals[-1].item()
    merged["distributed/world_size"] = float(world_size)
    return merged


def train_data_parallel(
    config: PPOConfig,
    *,
    env_factory: Callable[[], Environment],
    train_cases: Sequence[CaseData],
    metrics_sink: MetricsSink | None = None,
    checkpoint_dir: str | Path | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
    featurizer: Featurizer | None = None,
) -> TrainResult:
    """One rank of a data-parallel PPO run; every rank of the process group calls it alike.

    ``metrics_sink`` is called on rank 0 only, with the episode metrics of all ranks. ``should_stop``
    may be true on any rank: all stop before the same update. Returns this rank's TrainResult (the
    weights are the same on every rank)."""
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "train_data_parallel runs inside a process group: start it with torchrun or launch()"
        )
    if config.target_kl is not None:
        raise ValueError(
            "target_kl is not supported with data-parallel training: ranks would stop their epochs at "
            "different minibatches; leave it None"
        )
    rank, world_size = dist.get_rank(), dist.get_world_size()
    started = time.perf_counter()
    cases = list(train_cases)
    if featurizer is None:
        featurizer = _fit_featurizer(config, env_factory, cases)
    rank_dir: Path | None = None
    if checkpoint_dir is not None:
        root = Path(checkpoint_dir)
        rank_dir = root if rank == 0 else root / RANKS_DIR / f"rank-{rank}"
    _agree_on_resume_point(rank_dir, resume, world_size)
    deadline = None if config.max_seconds is None else started + config.max_seconds

    def agreed_stop() -> bool:
        local = (should_stop is not None and should_stop()) or (
            deadline is not None and time.perf_counter() > deadline
        )
        flag = torch.tensor([1 if local else 0], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def sink(update: int, metrics: dict[str, float]) -> None:
        merged = _merge_episode_metrics(metrics, world_size)
        if rank == 0 and metrics_sink is not None:
            metrics_sink(update, merged)

    return train(
        dataclasses.replace(config, seed=config.seed + rank, max_seconds=None),
        env_factory=env_factory,
        train_cases=cases,
        metrics_sink=sink,
        checkpoint_dir=rank_dir,
        should_stop=agreed_stop,
        resume=resume,
        featurizer=featurizer,
        prepare_update=_through_ddp,
    )


# ---- launching: torchrun from the calling process


def launch(
    config: PPOConfig,
    *,
    nproc: int,
    env_factory: Callable[[], Environment],
    train_cases: Sequence[CaseData],
    checkpoint_dir: str | Path,
    metrics_sink: MetricsSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
    featurizer: Featurizer | None = None,
    poll_s: float = 0.5,
) -> TrainResult:
    """Train with ``nproc`` data-parallel processes under torchrun; same contract as ``ppo.train``.

    ``env_factory`` and the cases travel to the ranks by pickle (a ``functools.partial`` of
    ``Environment`` does). Raises RuntimeError with the end of torchrun's output if a rank fails."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    root = Path(checkpoint_dir)
    work = root / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    problem = {
        "config": config.to_dict(),
        "env_factory": env_factory,
        "train_cases": list(train_cases),
        "checkpoint_dir": str(root),
        "resume": resume,
        "featurizer": featurizer,
    }
    torch.save(problem, work / PROBLEM_FILE)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={nproc}",
        "-m",
        "training.rl.distributed",
        str(work / PROBLEM_FILE),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, config.torch_threads)))
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    metrics_path = work / METRICS_FILE
    with (work / LOG_FILE).open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
        )
        offset = 0
        try:
            while True:
                finished = process.poll() is not None
                offset = _relay_metrics(metrics_path, offset, history, metrics_sink)
                if finished:
                    break
                if should_stop is not None and should_stop():
                    (work / STOP_FILE).touch()
                time.sleep(poll_s)
        except BaseException:
            process.kill()
            process.wait()
            raise
    if process.returncode != 0:
        tail = (work / LOG_FILE).read_text()[-4000:]
        raise RuntimeError(f"torchrun exited with status {process.returncode}:\n{tail}")
    outcome = json.loads((work / RESULT_FILE).read_text())
    checkpoint = latest_checkpoint(root)
    if checkpoint is None:
        raise CheckpointError(f"the data-parallel run left no checkpoint in {root}")
    spec = env_factory().spec
    return TrainResult(
        model=checkpoint.load_model().eval(),
        featurizer=checkpoint.featurizer(spec),
        spec=spec,
        updates=int(outcome["updates"]),
        global_step=int(outcome["global_step"]),
        metrics=history[-1] if history else {},
        history=history,
        stopped=bool(outcome["stopped"]),
        resumed_from=outcome["resumed_from"],
        checkpoint=checkpoint.path,
        wall_time_s=time.perf_counter() - started,
        rollout_note=outcome.get("rollout_note"),
    )


def _relay_metrics(path: Path, offset: int, history: list[dict[str, float]], sink: MetricsSink | None) -> int:
    """Pass on the complete lines rank 0 appended since ``offset``; returns the new offset."""
    if not path.exists():
        return offset
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    for line in complete.splitlines():
        record = json.loads(line)
        history.append(record["metrics"])
        if sink is not None:
            sink(int(record["update"]), record["metrics"])
    return offset + len(complete)


def main(argv: list[str] | None = None) -> int:
    """One rank, as torchrun starts it: ``python -m training.rl.distributed <problem file>``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: torchrun --nproc-per-node N -m training.rl.distributed PROBLEM_FILE", file=sys.stderr)
        return 2
    problem_path = Path(args[0])
    work = problem_path.parent
    _die_with_parent()  # torchrun's agent gone: this rank goes too
    # The file was written by launch() for this run, in the job's own directory.
    problem = torch.load(problem_path, weights_only=False)
    dist.init_process_group(backend="gloo")
    try:
        rank = dist.get_rank()

        def sink(update: int, metrics: dict[str, float]) -> None:
            with (work / METRICS_FILE).open("a") as handle:
                handle.write(json.dumps({"update": update, "metrics": metrics}) + "\n")

        result = train_data_parallel(
            PPOConfig.from_dict(problem["config"]),
            env_factory=problem["env_factory"],
            train_cases=problem["train_cases"],
            metrics_sink=sink,
            checkpoint_dir=problem["checkpoint_dir"],
            should_stop=(work / STOP_FILE).exists,
            resume=problem["resume"],
            featurizer=problem["featurizer"],
        )
        if rank == 0:
            outcome = {
                "updates": result.updates,
                "global_step": result.global_step * dist.get_world_size(),
                "stopped": result.stopped,
                "resumed_from": result.resumed_from,
                "rollout_note": result.rollout_note,
            }
            temporary = work / f".{RESULT_FILE}.tmp"
            temporary.write_text(json.dumps(outcome))
            os.replace(temporary, work / RESULT_FILE)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
