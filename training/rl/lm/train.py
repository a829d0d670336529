"""Training a language-model policy: build or load the model, SFT on demonstrations, then GRPO.

You are at the language-model policy's training desk. :func:`train` reads top to bottom:

1. demonstrations from the labelled cases (``demos.py``);
2. the model — from the latest checkpoint when there is one (resume is the default), else
   built for the workflow (tokenizer trained on the demonstrations' transcripts) or loaded
   from a local checkpoint with LoRA adapters (``modeling.py``);
3. SFT steps ``1 … sft.steps`` (``sft.py``), then GRPO steps ``sft.steps + 1 … total``
   (``grpo.py``), one counter across both phases: that is the training job's ``update``;
4. ``metrics_sink(step, metrics)`` after every step, a checkpoint every ``checkpoint_every``
   steps, at the end of SFT and at the end (``checkpoint.py``).

A run stops cleanly, with a checkpoint, when ``should_stop()`` says so or ``max_seconds`` is
spent; called again with the same ``checkpoint_dir`` it resumes where it stopped (data order
and sampling are seeded per step, optimizer state is restored).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from workflows.engine import CaseData, Environment, Policy, WorkflowSpec

from .checkpoint import LMCheckpoint, latest_lm_checkpoint, load_bundle, save_lm_checkpoint
from .config import LMTrainConfig
from .demos import demonstration_texts, demonstrations, encode_demonstrations
from .engines import RolloutEngine, TorchEngine, VllmEngine
from .grpo import grpo_step
from .modeling import ModelBundle, add_lora, build_model, build_tokenizer, load_pretrained, newline_token_ids
from .rollout import EpisodeTokens, TokenCodec
from .sft import sft_batch, sft_learning_rate, sft_loss

__all__ = ["LMTrainResult", "build_bundle", "train"]

MetricsSink = Callable[[int, dict[str, float]], None]


@dataclass(slots=True)
class LMTrainResult:
    """What a ``train`` call produced."""

    bundle: ModelBundle
    spec: WorkflowSpec
    steps: int  # step counter reached (SFT and GRPO together, including steps before a resume)
    metrics: dict[str, float]  # the last step's metrics
    history: list[dict[str, float]] = field(default_factory=list)  # every step of this call
    stopped: bool = False
    resumed_from: int | None = None
    checkpoint: Path | None = None
    demonstrations: int = 0
    wall_time_s: float = 0.0

    @property
    def updates(self) -> int:  # the name training jobs use
        return self.steps


def build_bundle(config: LMTrainConfig, spec: WorkflowSpec, texts: Sequence[str]) -> ModelBundle:
    """A fresh model: built for the workflow from ``texts``, or a local checkpoint with LoRA."""
    model_config = config.model
    if model_config.base_model:
        model, tokenizer = load_pretrained(model_config.base_model)
        model = add_lora(model, model_config)
        return ModelBundle(
            model, tokenizer, newline_token_ids(tokenizer), base_path=model_config.base_model, lora=True
        )
    tokenizer = build_tokenizer(
        spec, texts[: model_config.tokenizer_cases], vocab_size=model_config.vocab_size
    )
    model = build_model(model_config, tokenizer, seed=config.seed)
    return ModelBundle(model, tokenizer, newline_token_ids(tokenizer))


def _optimizer(bundle: ModelBundle, learning_rate: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    return torch.optim.AdamW(bundle.trainable_parameters(), lr=learning_rate, weight_decay=weight_decay)


def train(
    config: LMTrainConfig,
    *,
    env_factory: Callable[[], Environment],
    train_cases: Sequence[CaseData],
    demo_cases: Sequence[CaseData] | None = None,
    solver: Policy | None = None,
    review_case_ids: frozenset[str] = frozenset(),
    metrics_sink: MetricsSink | None = None,
    checkpoint_dir: str | Path | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
) -> LMTrainResult:
    """Train a language-model policy (SFT then GRPO); resumes from ``checkpoint_dir`` by default.

    ``train_cases`` are GRPO's cases; ``demo_cases`` (default: the same) are turned into
    demonstrations with ``solver`` (the workflow's reference solver, if any) and their expected
    outcomes; ids in ``review_case_ids`` are reviewer labels (their outcome always wins)."""
    started = time.perf_counter()
    if not train_cases and config.grpo.steps:
        raise ValueError("train_cases is empty")
    previous_threads = torch.get_num_threads()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    deadline = started + config.max_seconds if config.max_seconds else None

    def stop_now() -> bool:
        return bool(
            (should_stop is not None and should_stop()) or (deadline and time.perf_counter() > deadline)
        )

    try:
        spec = env_factory().spec
        # 1. Demonstrations.
        demos = demonstrations(
            env_factory,
            list(demo_cases if demo_cases is not None else train_cases),
            solver=solver,
            review_case_ids=review_case_ids,
        )
        random.Random(f"demos:{config.seed}").shuffle(demos)
        if config.sft.max_demonstrations:
            demos = demos[: config.sft.max_demonstrations]
        if config.sft.steps and not demos:
            raise ValueError("no demonstrations: SFT needs labelled cases")
        # 2. The model: resumed, built for the workflow, or a local checkpoint with LoRA.
        previous = latest_lm_checkpoint(checkpoint_dir) if (resume and checkpoint_dir) else None
        if previous is not None:
            previous.check_spec(spec)
            bundle = load_bundle(previous, for_training=True)
            step = previous.step
        else:
            bundle = build_bundle(config, spec, demonstration_texts(demos, env_factory))
            step = 0
        bundle.model.train()
        codec = TokenCodec.from_bundle(bundle)
        max_length = config.model.max_length
        encoded = [
            e for e in encode_demonstrations(demos, env_factory, codec) if len(e.token_ids) <= max_length
        ]
        runner = _Runner(config, bundle, spec, checkpoint_dir, metrics_sink, previous)
        # 3a. SFT.
        if step < config.sft.steps:
            step = runner.sft(encoded, start=step, stop_now=stop_now)
        # 3b. GRPO.
        if not runner.stopped and config.grpo.steps and step < config.total_steps:
            step = runner.grpo(env_factory, list(train_cases), codec, start=step, stop_now=stop_now)
        if runner.last_saved != step:
            runner.save(step)
        return LMTrainResult(
            bundle=bundle,
            spec=spec,
            steps=step,
            metrics=runner.history[-1]
            if runner.history
            else dict(previous.metadata["metrics"])
            if previous
            else {},
            history=runner.history,
            stopped=runner.stopped,
            resumed_from=previous.step if previous is not None else None,
            checkpoint=runner.checkpoint,
            demonstrations=len(encoded),
            wall_time_s=time.perf_counter() - started,
        )
    finally:
        torch.set_num_threads(previous_threads)


class _Runner:
    """The state one ``train`` call carries across phases: model, optimizer, checkpoints, metrics."""

    def __init__(
        self,
        config: LMTrainConfig,
        bundle: ModelBundle,
        spec: WorkflowSpec,
        checkpoint_dir: str | Path | None,
        metrics_sink: MetricsSink | None,
        previous: LMCheckpoint | None,
    ) -> None:
        self.config = config
        self.bundle = bundle
        self.spec = spec
        self.checkpoint_dir = checkpoint_dir
        self.metrics_sink = metrics_sink
        self.previous = previous
        self.history: list[dict[str, float]] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.phase = previous.phase if previous is not None else "sft"
        self.reference: torch.nn.Module | None = None
        self.checkpoint: Path | None = previous.path if previous is not None else None
        self.last_saved: int | None = previous.step if previous is not None else None
        self.stopped = False
        self.pad_token_id = int(bundle.tokenizer.pad_token_id)

    # -- bookkeeping

    def _restore_optimizer(self, phase: str) -> None:
        previous = self.previous
        if (
            previous is not None
            and previous.phase == phase
            and previous.trainer_file("optimizer.pt").is_file()
        ):
            assert self.optimizer is not None
            self.optimizer.load_state_dict(
                torch.load(previous.trainer_file("optimizer.pt"), weights_only=True)
            )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.history.append(metrics)
        if self.metrics_sink is not None:
            self.metrics_sink(step, metrics)
        if step % self.config.checkpoint_every == 0:
            self.save(step)

    def save(self, step: int) -> None:
        if self.checkpoint_dir is None:
            return
        reference_state = None
        if self.reference is not None:
            trainable = {n for n, p in self.bundle.model.named_parameters() if p.requires_grad}
            reference_state = {n: p.detach() for n, p in self.reference.named_parameters() if n in trainable}
        self.checkpoint = save_lm_checkpoint(
            self.checkpoint_dir,
            bundle=self.bundle,
            spec=self.spec,
            config=self.config.to_dict(),
            step=step,
            phase=self.phase,
            optimizer=self.optimizer,
            trainer_state={"step": step, "phase": self.phase},
            reference_state=reference_state,
            metrics=self.history[-1] if self.history else None,
            keep=self.config.keep_checkpoints,
        )
        self.last_saved = step

    # -- phases

    def sft(self, encoded: list[EpisodeTokens], *, start: int, stop_now: Callable[[], bool]) -> int:
        config = self.config.sft
        self.phase = "sft"
        self.optimizer = _optimizer(self.bundle, config.learning_rate, config.weight_decay)
        self._restore_optimizer("sft")
        model = self.bundle.model
        step = start
        while step < config.steps:
            if stop_now():
                self.stopped = True
                break
            step += 1
            tick = time.perf_counter()
            learning_rate = sft_learning_rate(config, step)
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate
            batch = sft_batch(encoded, seed=self.config.seed, step=step, batch_size=config.batch_size)
            self.optimizer.zero_grad(set_to_none=True)
            loss, tokens = sft_loss(model, batch, pad_token_id=self.pad_token_id)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                self.bundle.trainable_parameters(), config.max_grad_norm
            )
            self.optimizer.step()
            elapsed = time.perf_counter() - tick
            self.log(
                step,
                {
                    "phase/grpo": 0.0,
                    "loss/sft": loss.item(),
                    "sft/agent_tokens": float(tokens),
                    "optim/lr": learning_rate,
                    "optim/grad_norm": float(grad_norm),
                    "time/step_s": elapsed,
                    "time/tokens_per_s": sum(len(e.token_ids) for e in batch) / max(elapsed, 1e-9),
                },
            )
        if step == config.steps and not self.stopped and self.last_saved != step:
            self.save(step)  # the SFT model: the GRPO reference, and a vLLM engine's start point
        return step

    def grpo(
        self,
        env_factory: Callable[[], Environment],
        cases: list[CaseData],
        codec: TokenCodec,
        *,
        start: int,
        stop_now: Callable[[], bool],
    ) -> int:
        config = self.config.grpo
        resumed_in_grpo = (
            self.previous is not None and self.previous.phase == "grpo" and start > self.config.sft.steps
        )
        self.phase = "grpo"
        model = self.bundle.model
        if config.kl_coef > 0:
            self.reference = copy.deepcopy(model).eval()
            if (
                resumed_in_grpo
                and self.previous is not None
                and self.previous.trainer_file("reference.pt").is_file()
            ):
                saved = torch.load(self.previous.trainer_file("reference.pt"), weights_only=True)
                self.reference.load_state_dict(saved, strict=False)
            for parameter in self.reference.parameters():
                parameter.requires_grad_(False)
        self.optimizer = _optimizer(self.bundle, config.learning_rate)
        if resumed_in_grpo:
            self._restore_optimizer("grpo")
        engine = self._engine(config.engine)
        step = start
        try:
            while step < self.config.total_steps:
                if stop_now():
                    self.stopped = True
                    break
                step += 1
                metrics = grpo_step(
                    model=model,
                    optimizer=self.optimizer,
                    engine=engine,
                    codec=codec,
                    env_factory=env_factory,
                    cases=cases,
                    config=config,
                    seed=self.config.seed,
                    step=step,
                    pad_token_id=self.pad_token_id,
                    max_length=self.config.model.max_length,
                    reference=self.reference,
                )
                metrics["phase/grpo"] = 1.0
                self.log(step, metrics)
        finally:
            engine.close()
        return step

    def _engine(self, name: str) -> RolloutEngine:
        bundle = self.bundle
        if name == "vllm":
            if self.checkpoint is None:
                raise ValueError(
                    "the vllm rollout engine starts from a saved checkpoint: give a checkpoint_dir"
                )
            engine: RolloutEngine = VllmEngine(
                self.checkpoint,
                stop_token_ids=bundle.stop_token_ids,
                max_model_len=self.config.model.max_length,
                seed=self.config.seed,
            )
            engine.sync_weights(bundle.model)
            return engine
        return TorchEngine(bundle.model, stop_token_ids=bundle.stop_token_ids, pad_token_id=self.pad_token_id)
