"""Supervised fine-tuning on demonstrations: next-token loss on the model's own lines only.

You are in the language-model policy's classroom. Each demonstration is an encoded episode
(``demos.encode_demonstrations``); the loss is the mean cross-entropy over the tokens the agent
writes (``CALL …`` and ``DECIDE …`` lines, newline included) — the case and the tool results
are context, never targets. AdamW with linear warm-up then cosine decay to 10% of the peak.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch

from .config import SFTConfig
from .engines import pad_right
from .rollout import EpisodeTokens

__all__ = ["sft_batch", "sft_learning_rate", "sft_loss"]


def sft_learning_rate(config: SFTConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (1-based)."""
    if config.warmup_steps and step <= config.warmup_steps:
        return config.learning_rate * step / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def sft_batch(
    demos: Sequence[EpisodeTokens], *, seed: int, step: int, batch_size: int
) -> list[EpisodeTokens]:
    """The demonstrations of step ``step``: a seeded draw, so a resumed run sees the same batches."""
    rng = random.Random(f"sft:{seed}:{step}")
    if batch_size >= len(demos):
        return list(demos)
    return rng.sample(list(demos), batch_size)


def sft_loss(
    model: torch.nn.Module, batch: Sequence[EpisodeTokens], *, pad_token_id: int
) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the agent's tokens of ``batch`` and how many there were."""
    ids_B_T, attention_B_T = pad_right([episode.token_ids for episode in batch], pad_token_id)
    agent_B_T = torch.zeros_like(ids_B_T, dtype=torch.bool)
    for row, episode in enumerate(batch):
        agent_B_T[row, : len(episode.agent_mask)] = torch.tensor(episode.agent_mask, dtype=torch.bool)
    logits_B_T_V = model(input_ids=ids_B_T, attention_mask=attention_B_T, use_cache=False).logits
    targets_B_T = ids_B_T[:, 1:]
    loss_B_T = torch.nn.functional.cross_entropy(
        logits_B_T_V[:, :-1].float().reshape(-1, logits_B_T_V.shape[-1]),
        targets_B_T.reshape(-1),
        reduction="none",
    ).view_as(targets_B_T)
    mask_B_T = agent_B_T[:, 1:].float()
    count = int(mask_B_T.sum())
    return (loss_B_T * mask_B_T).sum() / max(count, 1), count
