"""PPO on a workflow environment: one training loop, top to bottom, importable as ``train(config, …)``.

You are in the RL side's gym. ``train`` reads like CleanRL's ``ppo.py``: set up (seeds,
featurizer, network, optimizer, vector of environments, or all of it from the latest
checkpoint), then per update: roll out ``rollout_steps`` steps in each of ``num_envs``
environments, compute GAE advantages, run ``update_epochs`` epochs of minibatch updates of the
clipped objective, log namespaced metrics to ``metrics_sink``, checkpoint every
``checkpoint_every`` updates.

How this departs from the PPO paper (Schulman et al., 2017) and from CleanRL:

- **Factored, masked actions.** The action is a tool or decision *plus* the decision's
  arguments (enum choices; amounts pointed at from values the observation holds). The
  probability ratio uses the joint log-probability ``log π(a) + Σ log π(arg | owned by a)``,
  and invalid options (tools already called or not yet callable, pointer slots with no
  valid value) are masked out of every softmax, so the policy never wastes samples on them
  (Huang & Ontañón, "A Closer Look at Invalid Action Masking"). The entropy bonus is the
  exact entropy of the factored distribution.
- **Episodic, short-horizon rewards.** Episodes last a handful of steps and the reward is
  mostly the rubric's score at the end, so ``gamma`` defaults to 1 (no discounting) and the
  ``max_steps`` truncation is a real terminal (the rubric scores it), never bootstrapped.
- **Auto-reset on new cases.** Each environment is reset on a freshly sampled training case
  (optionally through a difficulty curriculum) as soon as its episode ends.
- **Exact resumption.** Checkpoints hold the RNG states *and* the in-flight episodes (replayed
  on load), so an interrupted run resumed from its last checkpoint continues exactly as the
  uninterrupted run would have (on CPU, deterministic algorithms).
- **Rollouts in worker processes.** Stepping the engine is plain Python, so with
  ``rollout_workers = k`` the environments are split over this process and ``k - 1`` forked
  ones that step them at the same time, each sampling from its own copy of the current network
  (``rollout.py``); the optimisation runs here. Runs stay reproducible for a given ``k``.
- Adam's epsilon is 1e-5 and the learning rate anneals linearly to zero (CleanRL defaults);
  advantages are normalised per minibatch; the value loss is clipped like the policy.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workflows.engine import CaseData, Environment, WorkflowSpec

from .actions import ActionLayout
from .checkpoint import latest_checkpoint, save_checkpoint
from .curriculum import Curriculum
from .features import Featurizer, collect_observations
from .nets import ActorCritic, ModelShape, build_model
from .policy import NeuralPolicy
from .rollout import RolloutSettings, make_rollout
from .vec import EpisodeResult

__all__ = ["PPOConfig", "TrainResult", "train"]

MetricsSink = Callable[[int, dict[str, float]], None]
# model -> the update pass's (features, masks, actions, heads) -> (log-probs, entropies, values)
PrepareUpdate = Callable[[ActorCritic], Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True, slots=True)
class PPOConfig:
    """Hyperparameters of one PPO run. Every field has help (``PPOConfig.help()``); invalid values
    raise ``ValueError`` naming the field."""

    seed: int = field(default=0, metadata=_help("Seed for the network, sampling, shuffling and cases."))
    total_updates: int = field(default=3000, metadata=_help("PPO updates (rollout + optimisation) to run."))
    num_envs: int = field(default=128, metadata=_help("Environments stepped together in a rollout."))
    rollout_steps: int = field(default=8, metadata=_help("Steps per environment per update."))
    update_epochs: int = field(default=2, metadata=_help("Passes over each rollout batch."))
    minibatches: int = field(
        default=4, metadata=_help("Minibatches per epoch; must divide num_envs * rollout_steps.")
    )
    learning_rate: float = field(default=1e-3, metadata=_help("Adam learning rate (> 0)."))
    anneal_lr: bool = field(default=True, metadata=_help("Decay the learning rate linearly to 0."))
    gamma: float = field(default=1.0, metadata=_help("Discount factor, in (0, 1]."))
    gae_lambda: float = field(default=0.95, metadata=_help("GAE lambda, in [0, 1]."))
    clip_coef: float = field(default=0.2, metadata=_help("PPO ratio clipping epsilon (> 0)."))
    clip_value_loss: bool = field(default=True, metadata=_help("Clip the value update like the policy."))
    entropy_coef: float = field(default=0.05, metadata=_help("Entropy bonus weight (>= 0)."))
    value_coef: float = field(default=0.5, metadata=_help("Value loss weight (>= 0)."))
    max_grad_norm: float = field(default=0.5, metadata=_help("Global gradient norm clip (> 0)."))
    target_kl: float | None = field(
        default=None, metadata=_help("Stop an update's epochs early above this approximate KL (None: never).")
    )
    normalize_advantages: bool = field(default=True, metadata=_help("Normalise advantages per minibatch."))
    hidden_size: int = field(default=64, metadata=_help("Width of the actor and critic MLPs."))
    hidden_layers: int = field(default=2, metadata=_help("Hidden layers of the actor and critic MLPs."))
    activation: str = field(default="relu", metadata=_help("Hidden activation: 'tanh' or 'relu'."))
    fit_cases: int = field(
        default=256, metadata=_help("Training cases run through every tool to fit the featurizer.")
    )
    curriculum: bool = field(
        default=False, metadata=_help("Start on the easiest difficulty and advance on success.")
    )
    curriculum_threshold: float = field(
        default=0.9, metadata=_help("Decision accuracy over the window that advances a level, in (0, 1].")
    )
    curriculum_window: int = field(
        default=500, metadata=_help("Finished episodes the curriculum's success rate is measured on.")
    )
    checkpoint_every: int = field(
        default=50, metadata=_help("Save a checkpoint every this many updates (and at the end).")
    )
    keep_checkpoints: int = field(default=2, metadata=_help("Checkpoints kept on disk (>= 1)."))
    rollout_workers: int = field(
        default=2,
        metadata=_help(
            "Processes stepping the environments, this one included (0 or 1: only this one). One per "
            "free core; on a machine busy with other work 1 is faster. Runs are reproducible for a "
            "given value; 0 and 1 give the same run."
        ),
    )
    torch_threads: int = field(
        default=1,
        metadata=_help(
            "torch.set_num_threads for the run (0: leave as is). One is fastest for these small "
            "networks, and spare cores go to rollout_workers."
        ),
    )
    deterministic: bool = field(
        default=True, metadata=_help("torch.use_deterministic_algorithms during the run (reproducible).")
    )
    max_seconds: float | None = field(
        default=None, metadata=_help("Wall-clock budget of this call in seconds; stops cleanly (None: none).")
    )

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"{name} {what}, got {getattr(self, name)!r}")

        for name in (
            "total_updates",
            "num_envs",
            "rollout_steps",
            "update_epochs",
            "minibatches",
            "hidden_size",
            "hidden_layers",
            "fit_cases",
            "curriculum_window",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            value = getattr(self, name)
            need(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                name,
                "must be an integer >= 1",
            )
        need(isinstance(self.seed, int) and not isinstance(self.seed, bool), "seed", "must be an integer")
        need(
            (self.num_envs * self.rollout_steps) % self.minibatches == 0,
            "minibatches",
            f"must divide the batch num_envs * rollout_steps = {self.num_envs * self.rollout_steps}",
        )
        need(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate", "must be > 0")
        need(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        need(0 <= self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]")
        need(self.clip_coef > 0, "clip_coef", "must be > 0")
        need(self.entropy_coef >= 0, "entropy_coef", "must be >= 0")
        need(self.value_coef >= 0, "value_coef", "must be >= 0")
        need(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        need(self.target_kl is None or self.target_kl > 0, "target_kl", "must be > 0 or None")
        need(self.activation in ("tanh", "relu"), "activation", "must be 'tanh' or 'relu'")
        need(0 < self.curriculum_threshold <= 1, "curriculum_threshold", "must be in (0, 1]")
        need(isinstance(self.torch_threads, int) and self.torch_threads >= 0, "torch_threads", "must be >= 0")
        need(self.max_seconds is None or self.max_seconds > 0, "max_seconds", "must be > 0 or None")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.minibatches

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name → help text (for forms and docs)."""
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PPOConfig:
        """Build from a JSON dict; unknown keys raise ValueError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown PPOConfig field(s): {', '.join(unknown)}")
        return cls(**dict(data))


@dataclass(slots=True)
class TrainResult:
    """What a ``train`` call produced."""

    model: ActorCritic
    featurizer: Featurizer
    spec: WorkflowSpec
    updates: int  # update counter reached (including updates done before a resume)
    global_step: int  # environment steps taken in total
    metrics: dict[str, float]  # the last update's metrics
    history: list[dict[str, float]]  # every update's metrics in this call
    stopped: bool  # ended early by should_stop or max_seconds
    resumed_from: int | None  # the update a checkpoint resumed at, if any
    checkpoint: Path | None  # the last checkpoint written
    wall_time_s: float
    rollout_note: str | None = None  # why rollouts ran in this process despite rollout_workers

    def policy(self, *, deterministic: bool = True, seed: int | None = None) -> NeuralPolicy:
        return NeuralPolicy(self.model, self.featurizer, self.spec, deterministic=deterministic, seed=seed)


def train(
    config: PPOConfig,
    *,
    env_factory: Callable[[], Environment],
    train_cases: Sequence[CaseData],
    metrics_sink: MetricsSink | None = None,
    checkpoint_dir: str | Path | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
    featurizer: Featurizer | None = None,
    prepare_update: PrepareUpdate | None = None,
) -> TrainResult:
    """Train a policy with PPO; resumes from the latest checkpoint in ``checkpoint_dir`` by default.

    ``env_factory`` returns a fresh Environment (one per vector slot); ``metrics_sink(update,
    metrics)`` is called after each update; ``should_stop()`` is polled before each update (a
    cancelled job stops cleanly, with a final checkpoint). ``featurizer`` defaults to one fitted
    on ``config.fit_cases`` training cases (a checkpoint's featurizer wins on resume).
    ``prepare_update(model)`` returns the function the update pass calls in place of
    ``model.evaluate``; ``training.rl.distributed`` passes one that runs it through
    DistributedDataParallel, so every rank's gradients are averaged before each step.
    """
    started = time.perf_counter()
    if not train_cases:
        raise ValueError("train_cases is empty")
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    torch.use_deterministic_algorithms(config.deterministic)
    try:
        return _train(
            config,
            env_factory=env_factory,
            train_cases=list(train_cases),
            metrics_sink=metrics_sink,
            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
            should_stop=should_stop,
            resume=resume,
            featurizer=featurizer,
            prepare_update=prepare_update,
            started=started,
        )
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)


def _train(
    config: PPOConfig,
    *,
    env_factory: Callable[[], Environment],
    train_cases: list[CaseData],
    metrics_sink: MetricsSink | None,
    checkpoint_dir: Path | None,
    should_stop: Callable[[], bool] | None,
    resume: bool,
    featurizer: Featurizer | None,
    prepare_update: PrepareUpdate | None,
    started: float,
) -> TrainResult:
    # ---- set-up: seeds, featurizer, network, optimizer, environments (or the checkpoint's)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    probe = env_factory()
    spec = probe.spec
    checkpoint = latest_checkpoint(checkpoint_dir) if (resume and checkpoint_dir is not None) else None
    if checkpoint is not None:
        featurizer = checkpoint.featurizer(spec)
    elif featurizer is None:
        picks = np.random.Generator(np.random.PCG64(config.seed)).permutation(len(train_cases))
        sample = [train_cases[int(i)] for i in picks[: config.fit_cases]]
        featurizer = Featurizer.fit(spec, collect_observations(probe, sample))
    layout = ActionLayout(spec, featurizer)
    shape = ModelShape(
        num_features=featurizer.size,
        num_actions=layout.num_actions,
        head_sizes=tuple(layout.head_sizes),
        head_owner=tuple(layout.head_owner),
        hidden_size=config.hidden_size,
        hidden_layers=config.hidden_layers,
        activation=config.activation,
    )
    model = build_model(shape, seed=config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5, fused=True)
    generator = torch.Generator()
    generator.manual_seed(config.seed)
    curriculum = Curriculum(
        train_cases,
        enabled=config.curriculum,
        threshold=config.curriculum_threshold,
        window=config.curriculum_window,
    )
    start_update, global_step = 0, 0
    trainer_state: dict[str, Any] | None = None
    if checkpoint is not None:
        if ModelShape.from_dict(checkpoint.metadata["model_shape"]) != shape:
            raise ValueError("the checkpoint's network shape differs from this config (hidden size/layers)")
        model.load_state_dict(checkpoint.load_model().state_dict())
        optimizer.load_state_dict(checkpoint.load_optimizer_state())
        trainer_state = checkpoint.load_trainer_state()
        start_update, global_step = int(trainer_state["update"]), int(trainer_state["global_step"])
        generator.set_state(trainer_state["torch_generator"])
        torch.set_rng_state(trainer_state["torch_global"])
        random.setstate(trainer_state["python_random"])
        curriculum.load_state_dict(trainer_state["curriculum"])
    resumed_from = start_update if checkpoint is not None else None
    # After any resume, so a data-parallel wrapper starts every rank from the same restored weights.
    evaluate = prepare_update(model) if prepare_update is not None else model.evaluate
    settings = RolloutSettings(
        env_factory=env_factory,
        featurizer=featurizer,
        layout=layout,
        cases=train_cases,
        curriculum=config.curriculum,
        curriculum_threshold=config.curriculum_threshold,
        curriculum_window=config.curriculum_window,
        seed=config.seed,
    )
    rollout = make_rollout(settings, workers=config.rollout_workers, num_envs=config.num_envs, model=model)
    with rollout:  # worker processes, if any, end with the block
        if trainer_state is not None:
            rollout.load_state_dict(trainer_state["rollout"])
        last_checkpoint = checkpoint.path if checkpoint is not None else None
        T, N = config.rollout_steps, config.num_envs
        history: list[dict[str, float]] = []
        metrics: dict[str, float] = {}
        stopped = False
        update = start_update

        def save(at_update: int) -> Path | None:
            if checkpoint_dir is None:
                return None
            state = {
                "update": at_update,
                "global_step": global_step,
                "torch_generator": generator.get_state(),
                "torch_global": torch.get_rng_state(),
                "python_random": random.getstate(),
                "curriculum": curriculum.state_dict(),
                "rollout": rollout.state_dict(),
            }
            return save_checkpoint(
                checkpoint_dir,
                model=model,
                optimizer=optimizer,
                featurizer=featurizer,
                spec=spec,
                config=config.to_dict(),
                update=at_update,
                global_step=global_step,
                trainer_state=state,
                metrics=metrics,
                keep=config.keep_checkpoints,
            )

        for update in range(start_update, config.total_updates):
            if should_stop is not None and should_stop():
                stopped = True
                break
            if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
                stopped = True
                break
            update_started = time.perf_counter()
            lr = config.learning_rate * (1.0 - update / config.total_updates if config.anneal_lr else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # ---- rollout: T steps in every environment with the current policy
            batch = rollout.collect(model, T, curriculum.level_index)
            for episode in batch.episodes:
                curriculum.record(episode.correct)
            episodes = batch.episodes
            global_step += T * N
            rollout_s = time.perf_counter() - update_started
            features_T_N_F = torch.from_numpy(batch.features_T_N_F)
            masks_T_N_M = torch.from_numpy(batch.masks_T_N_M)
            actions_T_N = torch.from_numpy(batch.actions_T_N)
            heads_T_N_H = torch.from_numpy(batch.heads_T_N_H)
            logp_T_N = torch.from_numpy(batch.logp_T_N)
            values_T_N = torch.from_numpy(batch.values_T_N)
            rewards_T_N = torch.from_numpy(batch.rewards_T_N)
            dones_T_N = torch.from_numpy(batch.dones_T_N)
            next_value_N = torch.from_numpy(batch.next_value_N)

            # ---- advantages: GAE(gamma, lambda); an episode's end is terminal (the rubric scored it)
            with torch.no_grad():
                advantages_T_N = torch.zeros((T, N))
                last_gae_N = torch.zeros(N)
                for t in reversed(range(T)):
                    following_N = next_value_N if t == T - 1 else values_T_N[t + 1]
                    nonterminal_N = 1.0 - dones_T_N[t]
                    delta_N = rewards_T_N[t] + config.gamma * following_N * nonterminal_N - values_T_N[t]
                    last_gae_N = delta_N + config.gamma * config.gae_lambda * nonterminal_N * last_gae_N
                    advantages_T_N[t] = last_gae_N
                returns_T_N = advantages_T_N + values_T_N

            # ---- optimisation: update_epochs x minibatches of the clipped objective
            B = config.batch_size
            features_B_F = features_T_N_F.reshape(B, -1)
            masks_B_M = masks_T_N_M.reshape(B, -1)
            actions_B = actions_T_N.reshape(B)
            heads_B_H = heads_T_N_H.reshape(B, -1)
            logp_B = logp_T_N.reshape(B)
            values_B = values_T_N.reshape(B)
            advantages_B = advantages_T_N.reshape(B)
            returns_B = returns_T_N.reshape(B)
            model.train()
            clip_fracs: list[float] = []
            approx_kl = torch.tensor(0.0)
            policy_loss = value_loss = entropy = torch.tensor(0.0)
            grad_norm = torch.tensor(0.0)
            for _epoch in range(config.update_epochs):
                order_B = torch.randperm(B, generator=generator)
                for start in range(0, B, config.minibatch_size):
                    mb = order_B[start : start + config.minibatch_size]
                    new_logp_b, entropy_b, new_value_b = evaluate(
                        features_B_F[mb], masks_B_M[mb], actions_B[mb], heads_B_H[mb]
                    )
                    log_ratio_b = new_logp_b - logp_B[mb]
                    ratio_b = log_ratio_b.exp()
                    with torch.no_grad():
                        approx_kl = ((ratio_b - 1) - log_ratio_b).mean()  # Schulman's k3 estimator
                        clip_fracs.append(((ratio_b - 1.0).abs() > config.clip_coef).float().mean().item())
                    advantages_b = advantages_B[mb]
                    if config.normalize_advantages and advantages_b.numel() > 1:
                        advantages_b = (advantages_b - advantages_b.mean()) / (advantages_b.std() + 1e-8)
                    policy_loss = torch.max(
                        -advantages_b * ratio_b,
                        -advantages_b * ratio_b.clamp(1 - config.clip_coef, 1 + config.clip_coef),
                    ).mean()
                    if config.clip_value_loss:
                        clipped_b = values_B[mb] + (new_value_b - values_B[mb]).clamp(
                            -config.clip_coef, config.clip_coef
                        )
                        value_loss = (
                            0.5
                            * torch.max(
                                (new_value_b - returns_B[mb]) ** 2, (clipped_b - returns_B[mb]) ** 2
                            ).mean()
                        )
                    else:
                        value_loss = 0.5 * ((new_value_b - returns_B[mb]) ** 2).mean()
                    entropy = entropy_b.mean()
                    loss = policy_loss - config.entropy_coef * entropy + config.value_coef * value_loss
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                if config.target_kl is not None and approx_kl.item() > config.target_kl:
                    break

            # ---- metrics
            elapsed = time.perf_counter() - update_started
            variance = returns_B.var()
            metrics = {
                **_episode_metrics(episodes),
                "loss/policy": policy_loss.item(),
                "loss/value": value_loss.item(),
                "loss/entropy": entropy.item(),
                "policy/kl": approx_kl.item(),
                "policy/clip_frac": float(np.mean(clip_fracs)) if clip_fracs else 0.0,
                "policy/explained_variance": (
                    float(1 - (returns_B - values_B).var() / variance) if variance > 0 else 0.0
                ),
                "optim/lr": lr,
                "optim/grad_norm": float(grad_norm),
                "curriculum/level": float(curriculum.level),
                "curriculum/success_rate": curriculum.success_rate,
                "progress/update": float(update + 1),
                "progress/env_steps": float(global_step),
                "time/steps_per_s": T * N / elapsed if elapsed > 0 else 0.0,
                "time/rollout_s": rollout_s,
                "time/update_s": elapsed - rollout_s,
                "time/elapsed_s": time.perf_counter() - started,
            }
            history.append(metrics)
            if metrics_sink is not None:
                metrics_sink(update + 1, metrics)
            if (update + 1) % config.checkpoint_every == 0 and update + 1 < config.total_updates:
                last_checkpoint = save(update + 1)
        else:
            update = config.total_updates  # the loop ran to completion
        # `update` is now the first update not run (== total_updates when the loop completed)
        if checkpoint_dir is not None and (last_checkpoint is None or update != start_update):
            last_checkpoint = save(update)
        return TrainResult(
            model=model.eval(),
            featurizer=featurizer,
            spec=spec,
            updates=update,
            global_step=global_step,
            metrics=metrics,
            history=history,
            stopped=stopped,
            resumed_from=resumed_from,
            checkpoint=last_checkpoint,
            wall_time_s=time.perf_counter() - started,
            rollout_note=rollout.fallback_reason,
        )


def _episode_metrics(episodes: Sequence[EpisodeResult]) -> dict[str, float]:
    """reward/*, episode/* and decision/* over the episodes that finished in this rollout."""
    if not episodes:
        return {"episode/count": 0.0}
    count = len(episodes)
    metrics = {
        "reward/mean": sum(e.episode_return for e in episodes) / count,
        "reward/rubric": sum(e.score for e in episodes) / count,
        "episode/count": float(count),
        "episode/length": sum(e.length for e in episodes) / count,
        "episode/gated": sum(e.gated for e in episodes) / count,
        "episode/truncated": sum(e.truncated for e in episodes) / count,
    }
    labelled = [e for e in episodes if e.expected is not None]
    if labelled:
        metrics["decision/accuracy"] = sum(e.correct for e in labelled) / len(labelled)
    totals: dict[str, list[float]] = {}
    for episode in episodes:
        for name, score in episode.criteria.items():
            totals.setdefault(name, []).append(score)
    for name, scores in totals.items():
        metrics.setdefault(f"reward/{name}", sum(scores) / len(scores))
    return metrics
