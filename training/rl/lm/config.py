"""Typed, frozen configs of language-model policy training (pure Python: safe to import anywhere).

:class:`LMTrainConfig` is what a training job of kind ``lm`` stores: the model to build or load
(:class:`LMModelConfig`), supervised fine-tuning on demonstrations (:class:`SFTConfig`) and GRPO
on the workflow's rubric (:class:`GRPOConfig`). Every field has help text (``help()``); invalid
values raise ``ValueError`` naming the field's dotted path (``grpo.group_size must be …``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENGINES", "GRPOConfig", "LMModelConfig", "LMTrainConfig", "SFTConfig"]

ENGINES = ("torch", "vllm")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _check(config: Any, prefix: str, rules: list[tuple[bool, str, str]]) -> None:
    for ok, name, what in rules:
        if not ok:
            raise ValueError(f"{prefix}{name} {what}, got {getattr(config, name)!r}")


def _is_int(value: Any, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Config:
    """Shared helpers: help texts, dicts, building from JSON with unknown keys refused."""

    _prefix = ""

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls._prefix.rstrip('.') or 'config'} must be an object")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{cls._prefix}{unknown[0]} is not a setting of {cls.__name__}")
        return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class LMModelConfig(_Config):
    """The model: built for the workflow (``base_model`` empty) or a local checkpoint with LoRA."""

    _prefix = "model."

    base_model: str = field(
        default="",
        metadata=_help(
            "Empty: build a small Llama-architecture model and tokenizer for the workflow. Otherwise a "
            "local Hugging Face checkpoint directory (Qwen, Llama, …) fine-tuned with LoRA adapters."
        ),
    )
    vocab_size: int = field(default=512, metadata=_help("Tokenizer vocabulary of a built model (>= 300)."))
    hidden_size: int = field(default=64, metadata=_help("Width of a built model; a multiple of head_size."))
    head_size: int = field(default=64, metadata=_help("Attention head size of a built model (vLLM CPU: 64)."))
    layers: int = field(default=2, metadata=_help("Transformer layers of a built model."))
    intermediate_size: int = field(default=256, metadata=_help("MLP width of a built model."))
    max_length: int = field(
        default=1024, metadata=_help("Longest transcript in tokens (positions of a built model).")
    )
    tokenizer_cases: int = field(
        default=200, metadata=_help("Demonstration transcripts the tokenizer is trained on (besides names).")
    )
    lora_rank: int = field(default=8, metadata=_help("LoRA rank for a base_model."))
    lora_alpha: int = field(default=16, metadata=_help("LoRA alpha for a base_model."))
    lora_targets: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj"),
        metadata=_help("Module names LoRA adapts in a base_model."),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        _check(
            self,
            self._prefix,
            [
                (isinstance(self.base_model, str), "base_model", "must be a path or empty"),
                (_is_int(self.vocab_size, 300), "vocab_size", "must be an integer >= 300"),
                (_is_int(self.head_size, 8), "head_size", "must be an integer >= 8"),
                (
                    _is_int(self.hidden_size) and self.hidden_size % max(1, self.head_size) == 0,
                    "hidden_size",
                    "must be a positive multiple of head_size",
                ),
                (_is_int(self.layers), "layers", "must be an integer >= 1"),
                (_is_int(self.intermediate_size), "intermediate_size", "must be an integer >= 1"),
                (_is_int(self.max_length, 64), "max_length", "must be an integer >= 64"),
                (_is_int(self.tokenizer_cases), "tokenizer_cases", "must be an integer >= 1"),
                (_is_int(self.lora_rank), "lora_rank", "must be an integer >= 1"),
                (_is_int(self.lora_alpha), "lora_alpha", "must be an integer >= 1"),
                (
                    bool(self.lora_targets) and all(isinstance(t, str) and t for t in self.lora_targets),
                    "lora_targets",
                    "must be a non-empty list of module names",
                ),
            ],
        )


@dataclass(frozen=True, slots=True)
class SFTConfig(_Config):
    """Supervised fine-tuning on demonstrations, loss on the model's own lines only."""

    _prefix = "sft."

    steps: int = field(default=150, metadata=_help("Optimizer steps (0: no SFT)."))
    batch_size: int = field(default=8, metadata=_help("Demonstration transcripts per step."))
    learning_rate: float = field(default=3e-3, metadata=_help("AdamW peak learning rate (> 0)."))
    warmup_steps: int = field(default=10, metadata=_help("Linear warm-up steps, then cosine decay to 10%."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay (>= 0)."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Global gradient norm clip (> 0)."))
    max_demonstrations: int | None = field(
        default=None, metadata=_help("Use at most this many demonstrations (None: all).")
    )

    def __post_init__(self) -> None:
        _check(
            self,
            self._prefix,
            [
                (_is_int(self.steps, 0), "steps", "must be an integer >= 0"),
                (_is_int(self.batch_size), "batch_size", "must be an integer >= 1"),
                (_is_number(self.learning_rate) and self.learning_rate > 0, "learning_rate", "must be > 0"),
                (_is_int(self.warmup_steps, 0), "warmup_steps", "must be an integer >= 0"),
                (_is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "must be >= 0"),
                (_is_number(self.max_grad_norm) and self.max_grad_norm > 0, "max_grad_norm", "must be > 0"),
                (
                    self.max_demonstrations is None or _is_int(self.max_demonstrations),
                    "max_demonstrations",
                    "must be an integer >= 1 or null",
                ),
            ],
        )


@dataclass(frozen=True, slots=True)
class GRPOConfig(_Config):
    """GRPO on multi-turn episodes (see ``grpo.py`` for the objective and its departures)."""

    _prefix = "grpo."

    steps: int = field(default=40, metadata=_help("GRPO steps (rollout + update); 0: SFT only."))
    cases_per_step: int = field(default=4, metadata=_help("Training cases sampled per step."))
    group_size: int = field(default=4, metadata=_help("Episodes sampled per case: the group G (>= 2)."))
    temperature: float = field(default=1.0, metadata=_help("Sampling temperature of rollouts (> 0)."))
    learning_rate: float = field(default=1e-4, metadata=_help("AdamW learning rate (> 0)."))
    update_epochs: int = field(
        default=1, metadata=_help("Passes over each step's episodes; above 1 the ratio clipping binds.")
    )
    clip_low: float = field(default=0.2, metadata=_help("Ratio clipped below at 1 - clip_low (0 < x < 1)."))
    clip_high: float = field(default=0.28, metadata=_help("Ratio clipped above at 1 + clip_high (> 0)."))
    kl_coef: float = field(
        default=0.0, metadata=_help("Weight of the KL penalty to the SFT model (0: no reference model).")
    )
    scale_rewards: bool = field(
        default=True, metadata=_help("Divide advantages by the group's reward std (False: Dr. GRPO).")
    )
    max_new_tokens: int = field(default=192, metadata=_help("Longest model line per turn, in tokens."))
    microbatch_size: int = field(default=8, metadata=_help("Episodes per forward/backward pass."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Global gradient norm clip (> 0)."))
    engine: str = field(default="torch", metadata=_help("Rollout engine: 'torch' or 'vllm' (offline LLM)."))

    def __post_init__(self) -> None:
        _check(
            self,
            self._prefix,
            [
                (_is_int(self.steps, 0), "steps", "must be an integer >= 0"),
                (_is_int(self.cases_per_step), "cases_per_step", "must be an integer >= 1"),
                (_is_int(self.group_size, 2), "group_size", "must be an integer >= 2 (a group needs peers)"),
                (_is_number(self.temperature) and self.temperature > 0, "temperature", "must be > 0"),
                (_is_number(self.learning_rate) and self.learning_rate > 0, "learning_rate", "must be > 0"),
                (_is_int(self.update_epochs), "update_epochs", "must be an integer >= 1"),
                (_is_number(self.clip_low) and 0 < self.clip_low < 1, "clip_low", "must be in (0, 1)"),
                (_is_number(self.clip_high) and self.clip_high > 0, "clip_high", "must be > 0"),
                (_is_number(self.kl_coef) and self.kl_coef >= 0, "kl_coef", "must be >= 0"),
                (isinstance(self.scale_rewards, bool), "scale_rewards", "must be true or false"),
                (_is_int(self.max_new_tokens, 4), "max_new_tokens", "must be an integer >= 4"),
                (_is_int(self.microbatch_size), "microbatch_size", "must be an integer >= 1"),
                (_is_number(self.max_grad_norm) and self.max_grad_norm > 0, "max_grad_norm", "must be > 0"),
                (self.engine in ENGINES, "engine", f"must be one of {', '.join(ENGINES)}"),
            ],
        )

    @property
    def episodes_per_step(self) -> int:
        return self.cases_per_step * self.group_size


@dataclass(frozen=True, slots=True)
class LMTrainConfig(_Config):
    """One language-model policy training run: build or load, SFT, then GRPO."""

    seed: int = field(default=0, metadata=_help("Seed for weights, data order, sampling and cases."))
    model: LMModelConfig = field(default_factory=LMModelConfig, metadata=_help("The model."))
    sft: SFTConfig = field(default_factory=SFTConfig, metadata=_help("Supervised fine-tuning."))
    grpo: GRPOConfig = field(default_factory=GRPOConfig, metadata=_help("GRPO."))
    checkpoint_every: int = field(
        default=20, metadata=_help("Checkpoint every this many steps (SFT and GRPO), and at the end.")
    )
    keep_checkpoints: int = field(default=2, metadata=_help("Checkpoints kept on disk (>= 1)."))
    torch_threads: int = field(default=0, metadata=_help("torch.set_num_threads for the run (0: as is)."))
    max_seconds: float | None = field(
        default=None, metadata=_help("Wall-clock budget of this call; stops cleanly (None: none).")
    )

    def __post_init__(self) -> None:
        for name, kind in (("model", LMModelConfig), ("sft", SFTConfig), ("grpo", GRPOConfig)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, kind.from_dict(value))
            elif not isinstance(value, kind):
                raise ValueError(f"{name} must be an object of {kind.__name__} settings")
        _check(
            self,
            "",
            [
                (
                    isinstance(self.seed, int) and not isinstance(self.seed, bool),
                    "seed",
                    "must be an integer",
                ),
                (_is_int(self.checkpoint_every), "checkpoint_every", "must be an integer >= 1"),
                (_is_int(self.keep_checkpoints), "keep_checkpoints", "must be an integer >= 1"),
                (_is_int(self.torch_threads, 0), "torch_threads", "must be an integer >= 0"),
                (
                    self.max_seconds is None or (_is_number(self.max_seconds) and self.max_seconds > 0),
                    "max_seconds",
                    "must be > 0 or null",
                ),
            ],
        )
        if self.sft.steps == 0 and self.grpo.steps == 0:
            raise ValueError("sft.steps must be >= 1 when grpo.steps is 0 (nothing would be trained)")

    @property
    def total_steps(self) -> int:
        return self.sft.steps + self.grpo.steps

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"]["lora_targets"] = list(self.model.lora_targets)
        return data
