"""Rollout collection: a group of environment slots plus the policy, in-process or in worker processes.

You are in the RL side's field crew. A :class:`RolloutWorker` owns a :class:`~.vec.VecEnv` (its
share of the training environments), a case sampler and a torch generator, and collects ``T``
steps with the current policy network: features, masks, sampled actions, their
log-probabilities and values, rewards, dones, the bootstrap value and the finished episodes.

:func:`make_rollout` returns either

- :class:`LocalRollout` (``rollout_workers`` 0 or 1): one worker in this process, using the
  trainer's network directly — the simple vector of environments; or
- :class:`RolloutPool` (``rollout_workers = k``): ``num_envs / k`` environments stepped in
  this process and as many in each of ``k - 1`` forked worker processes (each with a copy of
  the network, weights sent at the start of every rollout), all at once. Environment stepping
  is plain Python, so on a two-core machine two workers collect a rollout in about half the
  time; the optimisation then runs in the trainer process. Commands and results travel over
  pipes, once per rollout, never per step.

Worker ``i`` draws cases and actions from generators seeded with ``(seed, i)``, so a run is
reproducible for a given ``rollout_workers`` (0 and 1 give identical runs; other counts split
the environments differently and give different, equally valid runs). Worker states — in-flight
episodes, sampler and generator states — travel into checkpoints for exact resumption.

Forking needs the ``fork`` start method (Linux, macOS) and a process allowed to have children;
where either is missing (a daemonic Celery pool process, say) :func:`make_rollout` falls back
to the local rollout and says why in ``fallback_reason``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workflows.engine import CaseData, Environment

from .actions import ActionLayout
from .curriculum import CaseSampler, Curriculum
from .features import Featurizer
from .nets import ActorCritic, ModelShape
from .vec import EpisodeResult, VecEnv

__all__ = ["LocalRollout", "RolloutBatch", "RolloutPool", "RolloutSettings", "RolloutWorker", "make_rollout"]


@dataclass(slots=True)
class RolloutBatch:
    """``T`` steps of ``N`` environments (numpy, time-major) and the episodes that finished."""

    features_T_N_F: np.ndarray
    masks_T_N_M: np.ndarray
    actions_T_N: np.ndarray
    heads_T_N_H: np.ndarray
    logp_T_N: np.ndarray
    values_T_N: np.ndarray
    rewards_T_N: np.ndarray
    dones_T_N: np.ndarray
    next_value_N: np.ndarray
    episodes: list[EpisodeResult] = field(default_factory=list)

    @classmethod
    def concat(cls, batches: Sequence[RolloutBatch]) -> RolloutBatch:
        """Join worker batches along the environment axis (worker order)."""
        if len(batches) == 1:
            return batches[0]

        def join(name: str, axis: int = 1) -> np.ndarray:
            return np.concatenate([getattr(batch, name) for batch in batches], axis=axis)

        return cls(
            features_T_N_F=join("features_T_N_F"),
            masks_T_N_M=join("masks_T_N_M"),
            actions_T_N=join("actions_T_N"),
            heads_T_N_H=join("heads_T_N_H"),
            logp_T_N=join("logp_T_N"),
            values_T_N=join("values_T_N"),
            rewards_T_N=join("rewards_T_N"),
            dones_T_N=join("dones_T_N"),
            next_value_N=join("next_value_N", axis=0),
            episodes=[episode for batch in batches for episode in batch.episodes],
        )


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """What a worker needs besides the network (inherited by forked workers, never pickled)."""

    env_factory: Callable[[], Environment]
    featurizer: Featurizer
    layout: ActionLayout
    cases: Sequence[CaseData]
    curriculum: bool
    curriculum_threshold: float
    curriculum_window: int
    seed: int


class RolloutWorker:
    """A group of environment slots and the policy that acts in them."""

    def __init__(self, settings: RolloutSettings, *, index: int, num_envs: int, model: ActorCritic) -> None:
        self.settings = settings
        self.index = index
        self.model = model
        self.curriculum = Curriculum(
            settings.cases,
            enabled=settings.curriculum,
            threshold=settings.curriculum_threshold,
            window=settings.curriculum_window,
        )
        self.sampler = CaseSampler(self.curriculum, f"{settings.seed}:{index}")
        self.generator = torch.Generator()
        self.generator.manual_seed(settings.seed * 1_000_003 + index)
        self.vec = VecEnv(settings.env_factory, settings.featurizer, settings.layout, self.sampler, num_envs)
        self.vec.reset()

    def collect(self, steps: int, level_index: int) -> RolloutBatch:
        """Act ``steps`` times in every slot with the current network (sampling with the generator)."""
        self.curriculum.level_index = level_index
        vec, model = self.vec, self.model
        N, T = vec.num_envs, steps
        features_T_N_F = np.zeros((T, N, vec.features_N_F.shape[1]), dtype=np.float32)
        masks_T_N_M = np.zeros((T, N, vec.mask_N_M.shape[1]), dtype=bool)
        actions_T_N = np.zeros((T, N), dtype=np.int64)
        heads_T_N_H = np.zeros((T, N, len(self.settings.layout.heads)), dtype=np.int64)
        logp_T_N = np.zeros((T, N), dtype=np.float32)
        values_T_N = np.zeros((T, N), dtype=np.float32)
        rewards_T_N = np.zeros((T, N), dtype=np.float32)
        dones_T_N = np.zeros((T, N), dtype=np.float32)
        episodes: list[EpisodeResult] = []
        model.eval()
        for t in range(T):
            features_T_N_F[t] = vec.features_N_F
            masks_T_N_M[t] = vec.mask_N_M
            sample = model.act(
                torch.from_numpy(features_T_N_F[t]),
                torch.from_numpy(masks_T_N_M[t]),
                generator=self.generator,
            )
            action_N = sample.action_B.numpy()
            heads_N_H = sample.heads_B_H.numpy()
            actions_T_N[t] = action_N
            heads_T_N_H[t] = heads_N_H
            logp_T_N[t] = sample.logp_B.numpy()
            values_T_N[t] = sample.value_B.numpy()
            _, _, rewards_N, dones_N, finished = vec.step(action_N, heads_N_H)
            rewards_T_N[t] = rewards_N
            dones_T_N[t] = dones_N
            episodes += finished
        with torch.no_grad():
            next_value_N = model.value(torch.from_numpy(vec.features_N_F.copy())).numpy()
        return RolloutBatch(
            features_T_N_F,
            masks_T_N_M,
            actions_T_N,
            heads_T_N_H,
            logp_T_N,
            values_T_N,
            rewards_T_N,
            dones_T_N,
            next_value_N,
            episodes,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"vec": self.vec.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        self.generator.set_state(state["generator"])
        return self.vec.load_state_dict(state["vec"], self.settings.cases)


class _Closing:
    """``with rollout:`` closes it (and its worker processes) at the end of the block."""

    def close(self) -> None:
        return None

    def __enter__(self) -> _Closing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalRollout(_Closing):
    """One worker in this process, acting with the trainer's own network."""

    fallback_reason: str | None = None

    def __init__(self, settings: RolloutSettings, *, num_envs: int, model: ActorCritic) -> None:
        self.worker = RolloutWorker(settings, index=0, num_envs=num_envs, model=model)

    def collect(self, model: ActorCritic, steps: int, level_index: int) -> RolloutBatch:
        self.worker.model = model
        return self.worker.collect(steps, level_index)

    def state_dict(self) -> list[dict[str, Any]]:
        return [self.worker.state_dict()]

    def load_state_dict(self, states: Sequence[dict[str, Any]]) -> bool:
        if len(states) != 1:
            return False
        return self.worker.load_state_dict(states[0])


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the trainer dies (a SIGKILLed Celery worker, say)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(
    connection: Any,
    settings: RolloutSettings,
    index: int,
    num_envs: int,
    shape: ModelShape,
    inherited: Sequence[Any] = (),
) -> None:
    # A forked child holds copies of the trainer's pipe ends; close them so the trainer's death
    # reaches this worker as EOF, and die with it in any case.
    for end in inherited:
        end.close()
    _die_with_parent()
    torch.set_num_threads(1)  # one core per worker; the trainer process does the optimisation
    try:
        model = ActorCritic(shape)
        worker = RolloutWorker(settings, index=index, num_envs=num_envs, model=model)
    except Exception:
        connection.send(("error", traceback.format_exc()))
        return
    connection.send(("ready", None))
    while True:
        try:
            command, payload = connection.recv()
        except EOFError:
            return
        try:
            if command == "collect":
                weights, steps, level_index = payload
                model.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()})
                connection.send(("ok", worker.collect(steps, level_index)))
            elif command == "state":
                connection.send(("ok", worker.state_dict()))
            elif command == "load":
                connection.send(("ok", worker.load_state_dict(payload)))
            elif command == "close":
                connection.send(("ok", None))
                return
            else:
                connection.send(("error", f"unknown command {command!r}"))
        except Exception:
            connection.send(("error", traceback.format_exc()))


class RolloutPool(_Closing):
    """``workers`` groups of environments: the first stepped in this process, the others each in a
    forked worker process, all at the same time."""

    fallback_reason: str | None = None

    def __init__(self, settings: RolloutSettings, *, workers: int, num_envs: int, model: ActorCritic) -> None:
        counts = _split(num_envs, workers)
        context = multiprocessing.get_context("fork")
        self._connections: list[Any] = []
        self._processes: list[Any] = []
        try:
            for index, count in enumerate(counts[1:], start=1):
                parent, child = context.Pipe()
                process = context.Process(
                    target=_worker_main,
                    args=(child, settings, index, count, model.shape, [*self._connections, parent]),
                    name=f"caseloop-rollout-{index}",
                    daemon=True,
                )
                process.start()
                child.close()
                self._connections.append(parent)
                self._processes.append(process)
            self.local = RolloutWorker(settings, index=0, num_envs=counts[0], model=model)
            for connection in self._connections:
                self._receive(connection)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _receive(connection: Any) -> Any:
        status, payload = connection.recv()
        if status == "error":
            raise RuntimeError(f"rollout worker failed:\n{payload}")
        return payload

    def collect(self, model: ActorCritic, steps: int, level_index: int) -> RolloutBatch:
        weights = {name: tensor.detach().numpy().copy() for name, tensor in model.state_dict().items()}
        for connection in self._connections:
            connection.send(("collect", (weights, steps, level_index)))
        self.local.model = model
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the other cores are busy with the workers
        try:
            batches = [self.local.collect(steps, level_index)]
        finally:
            torch.set_num_threads(threads)
        batches += [self._receive(connection) for connection in self._connections]
        return RolloutBatch.concat(batches)

    def state_dict(self) -> list[dict[str, Any]]:
        for connection in self._connections:
            connection.send(("state", None))
        return [self.local.state_dict()] + [self._receive(c) for c in self._connections]

    def load_state_dict(self, states: Sequence[dict[str, Any]]) -> bool:
        if len(states) != len(self._connections) + 1:
            return False
        for connection, state in zip(self._connections, states[1:], strict=True):
            connection.send(("load", state))
        loaded = self.local.load_state_dict(states[0])
        return all([loaded] + [self._receive(c) for c in self._connections])

    def close(self) -> None:
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.send(("close", None))
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for connection in self._connections:
            connection.close()
        self._connections = []
        self._processes = []


def make_rollout(
    settings: RolloutSettings, *, workers: int, num_envs: int, model: ActorCritic
) -> LocalRollout | RolloutPool:
    """A pool (this process and ``workers - 1`` forked ones), or the local rollout when ``workers``
    is 0 or 1 or forking is not possible here (``fallback_reason`` then says why)."""
    if workers <= 1:
        return LocalRollout(settings, num_envs=num_envs, model=model)
    reason = None
    if "fork" not in multiprocessing.get_all_start_methods():
        reason = "the fork start method is not available on this platform"
    elif multiprocessing.current_process().daemon:
        reason = "this process is daemonic and may not start worker processes"
    if reason is None:
        try:
            return RolloutPool(settings, workers=min(workers, num_envs), num_envs=num_envs, model=model)
        except (AssertionError, OSError) as error:
            reason = f"could not start worker processes: {error}"
    local = LocalRollout(settings, num_envs=num_envs, model=model)
    local.fallback_reason = reason
    return local
