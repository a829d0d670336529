"""GRPO for multi-turn workflow episodes: group-normalised advantages, clipped ratio, agent tokens only.

You are in the language-model policy's gym. One GRPO step (:func:`grpo_step`):

1. **Rollout** — take the next ``cases_per_step`` training cases (:func:`sample_cases`: shuffled
   passes, each case once per pass) and play ``group_size`` episodes of
   each with the rollout engine at ``temperature`` (``rollout.run_episodes``): whole multi-turn
   episodes, the environment answering every line.
2. **Rewards and advantages** — an episode's reward is the environment's return (the rubric's
   total at the end, plus shaping, minus step costs and invalid-action penalties, parse errors
   included). Advantages are normalised within each case's group:
   ``A_i = (r_i - mean(r_group)) / (std(r_group) + eps)`` (sample std; without it when
   ``scale_rewards`` is off), the same value for every token the agent wrote in that episode.
3. **Update** — ``update_epochs`` passes over the step's episodes, one optimizer step per pass
   (gradients accumulated over microbatches), minimising
   ``-min(r_t A, clip(r_t, 1 - clip_low, 1 + clip_high) A) + kl_coef * KL_t`` summed over agent
   tokens, where ``r_t = pi_theta(token) / pi_old(token)`` and ``KL_t`` is the k3 estimator against the frozen
   SFT model (only when ``kl_coef`` > 0).

How this departs from the GRPO paper (Shao et al., 2024, DeepSeekMath):

- **Multi-turn episodes.** A "completion" is a whole episode of interleaved model lines and
  environment text; the environment's tokens are context only (masked out of the loss and of
  the token count), and the reward comes once, from the environment, for the whole episode.
- **Token-level normalisation.** The loss is summed over all agent tokens of the step and
  divided by their count (as DAPO does), instead of the paper's mean per sequence then per
  group, so long episodes are not down-weighted per token.
- **Asymmetric clipping** (``clip_high`` > ``clip_low``, DAPO's "clip-higher") is the default;
  set them equal for the paper's symmetric ε.
- **No reference model by default** (``kl_coef = 0``, as DAPO and Dr. GRPO recommend); with
  ``kl_coef > 0`` the reference is the SFT model, not the initial model of the paper.
- **Old policy = the rollout policy.** ``pi_old`` is the model at rollout time; with
  ``update_epochs = 1`` the ratio is 1 and its gradient is the policy gradient with the group
  baseline, so the old log-probabilities are taken from the same forward pass (detached)
  rather than recomputed; with more epochs they are recomputed once before the first pass.
  Rollout engines report their own sampling log-probabilities, but the trainer never uses
  them for the ratio (vLLM and torch agree only to ``LOGPROB_TOLERANCE``).
- Groups whose rewards are all equal carry no signal; their episodes are skipped in the update
  when there is no KL term (their gradient is zero anyway), and reported as
  ``groups/zero_std``.
- **Shared prompts.** A group's episodes open with the same case text: rollouts prefill it once
  and share its key/value cache, and the update runs it once per group and lets every episode
  attend to that shared forward pass (gradients flow through it), so only the rest of each
  episode runs per episode. Same log-probabilities and gradients as separate passes (tested),
  at a fraction of the cost when the case text dominates.
- Constant learning rate, AdamW, global gradient-norm clipping.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence

import torch

from workflows.engine import CaseData, Environment

from .config import GRPOConfig
from .engines import RolloutEngine, sequence_logprobs
from .rollout import Episode, TokenCodec, run_episodes

__all__ = ["episode_metrics", "group_advantages", "grpo_loss", "grpo_step", "grpo_update", "sample_cases"]

EPS = 1e-4


def sample_cases(cases: Sequence[CaseData], *, seed: int, step: int, count: int) -> list[CaseData]:
    """The cases of step ``step``: the next ``count`` of a seeded walk through shuffled passes over
    ``cases`` (every case once per pass, a new order each pass), so a resumed run draws the same
    ones and no case comes round again before all the others have."""
    if not cases:
        return []
    start = (step - 1) * count
    chosen = []
    for position in range(start, start + count):
        epoch, index = divmod(position, len(cases))
        chosen.append(cases[_pass_order(len(cases), seed, epoch)[index]])
    return chosen


@functools.lru_cache(maxsize=4)
def _pass_order(size: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(size))
    random.Random(f"grpo:{seed}:{epoch}").shuffle(order)
    return tuple(order)


def group_advantages(rewards_E: torch.Tensor, *, group_size: int, scale: bool) -> tuple[torch.Tensor, int]:
    """Advantages of ``E = groups * group_size`` rewards (groups contiguous) and the number of
    groups whose rewards were all equal."""
    rewards_N_G = rewards_E.view(-1, group_size)
    centred_N_G = rewards_N_G - rewards_N_G.mean(dim=1, keepdim=True)
    std_N_1 = rewards_N_G.std(dim=1, keepdim=True, unbiased=True)  # Bessel-corrected, as TRL
    if scale:
        centred_N_G = centred_N_G / (std_N_1 + EPS)
    zero_std = int((std_N_1.squeeze(1) < 1e-8).sum())
    return centred_N_G.reshape(-1), zero_std


def _target_mask(episodes: Sequence[Episode], width: int) -> torch.Tensor:
    """[B, width] bool: token t+1 of the row is the agent's (targets of logp_B_T)."""
    mask_B_T = torch.zeros((len(episodes), width), dtype=torch.bool)
    for row, episode in enumerate(episodes):
        agent = episode.agent_mask[1:]
        mask_B_T[row, : len(agent)] = torch.tensor(agent, dtype=torch.bool)
    return mask_B_T


def grpo_loss(
    model: torch.nn.Module,
    episodes: Sequence[Episode],
    advantages_B: torch.Tensor,
    *,
    config: GRPOConfig,
    pad_token_id: int,
    total_agent_tokens: int,
    old_logp_B_T: torch.Tensor | None = None,
    ref_logp_B_T: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped GRPO objective of a microbatch, normalised by the step's agent-token count."""
    logp_B_T = _episode_logprobs(model, episodes, pad_token_id)
    mask_B_T = _target_mask(episodes, logp_B_T.shape[1]).float()
    old_B_T = logp_B_T.detach() if old_logp_B_T is None else old_logp_B_T
    ratio_B_T = torch.exp(logp_B_T - old_B_T)
    advantage_B_1 = advantages_B[:, None]
    unclipped_B_T = ratio_B_T * advantage_B_1
    clipped_B_T = torch.clamp(ratio_B_T, 1 - config.clip_low, 1 + config.clip_high) * advantage_B_1
    per_token_B_T = -torch.minimum(unclipped_B_T, clipped_B_T)
    kl_sum = 0.0
    if ref_logp_B_T is not None and config.kl_coef > 0:
        delta_B_T = ref_logp_B_T - logp_B_T
        kl_B_T = torch.exp(delta_B_T) - delta_B_T - 1
        per_token_B_T = per_token_B_T + config.kl_coef * kl_B_T
        kl_sum = float((kl_B_T.detach() * mask_B_T).sum())
    loss = (per_token_B_T * mask_B_T).sum() / max(total_agent_tokens, 1)
    clipped = (
        (ratio_B_T.detach() < 1 - config.clip_low) | (ratio_B_T.detach() > 1 + config.clip_high)
    ).float()
    stats = {
        "policy_sum": float((-torch.minimum(unclipped_B_T, clipped_B_T).detach() * mask_B_T).sum()),
        "kl_sum": kl_sum,
        "clipped_sum": float((clipped * mask_B_T).sum()),
    }
    return loss, stats


def _episode_logprobs(model: torch.nn.Module, episodes: Sequence[Episode], pad_token_id: int) -> torch.Tensor:
    """Token log-probabilities of the episodes; a group's shared opening prompt runs once."""
    return sequence_logprobs(
        model,
        [e.token_ids for e in episodes],
        pad_token_id=pad_token_id,
        prefix_lengths=[e.prompt_length for e in episodes],
    )


@torch.no_grad()
def _logprobs(model: torch.nn.Module, episodes: Sequence[Episode], pad_token_id: int) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return _episode_logprobs(model, episodes, pad_token_id)
    finally:
        model.train(was_training)


def episode_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """Reward, rubric score and per-criterion scores, parse-error rate and lengths of episodes."""
    count = len(episodes)
    turns = sum(e.turns for e in episodes)
    metrics: dict[str, float] = {
        "reward/mean": sum(e.reward for e in episodes) / count,
        "score/mean": sum(e.score_total for e in episodes) / count,
        "parse_error/rate": sum(e.parse_errors for e in episodes) / max(turns, 1),
        "parse_error/episodes": sum(int(e.parse_errors > 0) for e in episodes) / count,
        "episode/turns": turns / count,
        "episode/decided": sum(int(e.trajectory.decision is not None) for e in episodes) / count,
        "episode/cut": sum(int(e.cut) for e in episodes) / count,
        "episode/tokens": sum(len(e.token_ids) for e in episodes) / count,
    }
    applied: dict[str, list[float]] = {}
    for episode in episodes:
        if episode.score is None:
            continue
        for result in episode.score.breakdown:
            if result.applied:
                applied.setdefault(result.name, []).append(float(result.score))
    for name, values in sorted(applied.items()):
        metrics[f"score/{name}"] = sum(values) / len(values)
    return metrics


def grpo_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    episodes: Sequence[Episode],
    advantages_E: torch.Tensor,
    *,
    config: GRPOConfig,
    pad_token_id: int,
    reference: torch.nn.Module | None = None,
) -> tuple[dict[str, float], bool]:
    """``update_epochs`` optimizer steps on scored episodes (one per epoch, gradients accumulated
    over microbatches, global norm clipping). Returns the update's metrics and whether it stepped
    (not when no episode carries a signal)."""
    use_kl = reference is not None and config.kl_coef > 0
    keep = [i for i in range(len(episodes)) if use_kl or abs(float(advantages_E[i])) > 0]
    total_agent_tokens = sum(sum(e.agent_mask[1:]) for e in episodes)
    policy_sum = kl_sum = clipped_sum = 0.0
    grad_norm = 0.0
    if keep:
        microbatches = [
            keep[i : i + config.microbatch_size] for i in range(0, len(keep), config.microbatch_size)
        ]
        old = (
            {tuple(mb): _logprobs(model, [episodes[i] for i in mb], pad_token_id) for mb in microbatches}
            if config.update_epochs > 1
            else {}
        )
        ref = (
            {tuple(mb): _logprobs(reference, [episodes[i] for i in mb], pad_token_id) for mb in microbatches}
            if use_kl and reference is not None
            else {}
        )
        model.train()
        for _ in range(config.update_epochs):
            optimizer.zero_grad(set_to_none=True)
            policy_sum = kl_sum = clipped_sum = 0.0
            for mb in microbatches:
                loss, stats = grpo_loss(
                    model,
                    [episodes[i] for i in mb],
                    advantages_E[mb],
                    config=config,
                    pad_token_id=pad_token_id,
                    total_agent_tokens=total_agent_tokens,
                    old_logp_B_T=old.get(tuple(mb)),
                    ref_logp_B_T=ref.get(tuple(mb)),
                )
                loss.backward()
                policy_sum += stats["policy_sum"]
                kl_sum += stats["kl_sum"]
                clipped_sum += stats["clipped_sum"]
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], config.max_grad_norm
                )
            )
            optimizer.step()
    metrics = {
        "loss/policy": policy_sum / max(total_agent_tokens, 1),
        "loss/kl": kl_sum / max(total_agent_tokens, 1),
        "clip/fraction": clipped_sum / max(total_agent_tokens, 1),
        "optim/grad_norm": grad_norm,
    }
    return metrics, bool(keep)


def grpo_step(
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    engine: RolloutEngine,
    codec: TokenCodec,
    env_factory: Callable[[], Environment],
    cases: Sequence[CaseData],
    config: GRPOConfig,
    seed: int,
    step: int,
    pad_token_id: int,
    max_length: int,
    reference: torch.nn.Module | None = None,
) -> dict[str, float]:
    """One GRPO step: rollout, group advantages, update epochs. Returns the step's metrics."""
    started = time.perf_counter()
    # 1. Rollout: group_size episodes of each sampled case, groups contiguous.
    step_cases = sample_cases(cases, seed=seed, step=step, count=config.cases_per_step)
    group_cases = [case for case in step_cases for _ in range(config.group_size)]
    episodes = run_episodes(
        engine,
        codec,
        env_factory,
        group_cases,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        seed=seed * 100_003 + step,
        max_length=max_length,
    )
    rollout_s = time.perf_counter() - started
    # 2. Rewards → group-normalised advantages.
    rewards_E = torch.tensor([e.reward for e in episodes], dtype=torch.float32)
    advantages_E, zero_std = group_advantages(
        rewards_E, group_size=config.group_size, scale=config.scale_rewards
    )
    # 3. Update epochs over the episodes that carry a signal.
    update, updated = grpo_update(
        model,
        optimizer,
        episodes,
        advantages_E,
        config=config,
        pad_token_id=pad_token_id,
        reference=reference,
    )
    if updated:
        engine.sync_weights(model)
    elapsed = time.perf_counter() - started
    metrics = episode_metrics(episodes)
    agent_tokens = sum(sum(e.agent_mask) for e in episodes)
    metrics.update(
        {
            "reward/std": float(rewards_E.std(unbiased=False)),
            "groups/zero_std": zero_std,
            **update,
            "optim/lr": optimizer.param_groups[0]["lr"],
            "time/step_s": elapsed,
            "time/rollout_s": rollout_s,
            "time/agent_tokens_per_s": agent_tokens / max(rollout_s, 1e-9),
        }
    )
    return metrics
