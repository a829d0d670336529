"""The MLP actor-critic and its masked, factored action distribution.

You are in the RL side's brain. :class:`ActorCritic` has two MLP trunks (actor and critic, as
in CleanRL's PPO: sharing a trunk lets the value loss fight the policy's features), an action
head over ``spec.action_names``, one concatenated head for every decision argument's options
(see ``actions.py``) and a value head.

The distribution is factored: ``π(a, args | s) = π(a | s) · Π_{k owned by a} π(arg_k | s)``.
Argument heads only count for the decision that owns them, so

- ``log π = log π(a) + Σ_k [owner_k = a] log π(arg_k)``;
- the entropy is exact: ``H = H(a) + Σ_k π(owner_k) H(arg_k)`` (argument heads depend on the
  state only, not on the sampled action).

Masked options get a logit of ``-1e9`` (not ``-inf``: a head whose options are all masked —
its decision is then masked too — must not produce NaNs). All heads share one linear layer
(their logits are laid out like the flat mask) and one padded log-softmax: a handful of tensor
operations per batch instead of a handful per head, which is most of the cost at these sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "ActorCritic",
    "FactoredSample",
    "ModelShape",
    "build_model",
    "count_parameters",
    "flat_parameters",
]

MASKED_LOGIT = -1e9


@dataclass(frozen=True, slots=True)
class ModelShape:
    """Everything needed to rebuild the network (stored in checkpoints)."""

    num_features: int
    num_actions: int
    head_sizes: tuple[int, ...]
    head_owner: tuple[int, ...]
    hidden_size: int = 128
    hidden_layers: int = 2
    activation: str = "tanh"

    def to_dict(self) -> dict[str, object]:
        return {
            "num_features": self.num_features,
            "num_actions": self.num_actions,
            "head_sizes": list(self.head_sizes),
            "head_owner": list(self.head_owner),
            "hidden_size": self.hidden_size,
            "hidden_layers": self.hidden_layers,
            "activation": self.activation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ModelShape:
        return cls(
            num_features=int(data["num_features"]),  # type: ignore[call-overload]
            num_actions=int(data["num_actions"]),  # type: ignore[call-overload]
            head_sizes=tuple(int(x) for x in data["head_sizes"]),  # type: ignore[attr-defined]
            head_owner=tuple(int(x) for x in data["head_owner"]),  # type: ignore[attr-defined]
            hidden_size=int(data["hidden_size"]),  # type: ignore[call-overload]
            hidden_layers=int(data["hidden_layers"]),  # type: ignore[call-overload]
            activation=str(data["activation"]),
        )


@dataclass(frozen=True, slots=True)
class FactoredSample:
    """A batch of sampled (or greedy) actions with their log-probabilities and values."""

    action_B: torch.Tensor  # long
    heads_B_H: torch.Tensor  # long, one chosen option per argument head
    logp_B: torch.Tensor
    value_B: torch.Tensor
    action_probs_B_A: torch.Tensor


def _mlp(inputs: int, hidden: int, layers: int, activation: str) -> nn.Sequential:
    act: type[nn.Module] = nn.Tanh if activation == "tanh" else nn.ReLU
    modules: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        linear = nn.Linear(width, hidden)
        nn.init.orthogonal_(linear.weight, gain=2**0.5)
        nn.init.zeros_(linear.bias)
        modules += [linear, act()]
        width = hidden
    return nn.Sequential(*modules)


def _head(inputs: int, outputs: int, gain: float) -> nn.Linear:
    linear = nn.Linear(inputs, outputs)
    nn.init.orthogonal_(linear.weight, gain=gain)
    nn.init.zeros_(linear.bias)
    return linear


class ActorCritic(nn.Module):
    """Actor and critic MLPs, one policy head (action logits, then every argument head's logits,
    in the flat-mask layout) and a value head."""

    segment_index: torch.Tensor
    head_owner: torch.Tensor

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        if shape.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {shape.activation!r}")
        self.shape = shape
        hidden = shape.hidden_size
        self.actor = _mlp(shape.num_features, hidden, shape.hidden_layers, shape.activation)
        self.critic = _mlp(shape.num_features, hidden, shape.hidden_layers, shape.activation)
        # Small initial policy logits (CleanRL's gain 0.01): start close to uniform over allowed options.
        self.policy_head = _head(hidden, shape.num_actions + sum(shape.head_sizes), 0.01)
        self.value_head = _head(hidden, 1, 1.0)
        # Every head (the action head first) as a row of indices into the flat logits, padded with
        # an index pointing at an always-masked extra column: one log-softmax serves all heads.
        sizes = [shape.num_actions, *shape.head_sizes]
        width = max(max(sizes), 1)
        pad = shape.num_actions + sum(shape.head_sizes)
        rows, start = [], 0
        for size in sizes:
            rows.append(list(range(start, start + size)) + [pad] * (width - size))
            start += size
        self.register_buffer("segment_index", torch.tensor(rows, dtype=torch.long), persistent=False)
        self.register_buffer(
            "head_owner", torch.tensor(list(shape.head_owner), dtype=torch.long), persistent=False
        )

    def forward(self, features_B_F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (unmasked) flat policy logits ``(B, M)`` and values ``(B,)``."""
        logits_B_M = self.policy_head(self.actor(features_B_F))
        return logits_B_M, self.value_head(self.critic(features_B_F)).squeeze(-1)

    def value(self, features_B_F: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.critic(features_B_F)).squeeze(-1)

    # -- the factored distribution

    def _segment_log_probs(
        self, features_B_F: torch.Tensor, mask_B_M: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked log-probabilities per head ``(B, 1 + heads, K)`` (action head first) and values."""
        logits_B_M, value_B = self(features_B_F)
        masked_B_M = logits_B_M.masked_fill(~mask_B_M, MASKED_LOGIT)
        padded_B_M = torch.cat(
            [masked_B_M, masked_B_M.new_full((masked_B_M.shape[0], 1), 2 * MASKED_LOGIT)], 1
        )
        segments_B_S_K = padded_B_M[:, self.segment_index]
        return torch.log_softmax(segments_B_S_K, dim=-1), value_B

    def action_log_probs(self, features_B_F: torch.Tensor, mask_B_M: torch.Tensor) -> torch.Tensor:
        """Masked log-probabilities of the action head ``(B, A)``, differentiable (attributions)."""
        logp_B_S_K, _ = self._segment_log_probs(features_B_F, mask_B_M)
        return logp_B_S_K[:, 0, : self.shape.num_actions]

    def _joint(self, logp_B_S_K: torch.Tensor, chosen_B_S: torch.Tensor) -> torch.Tensor:
        """log π(a) + Σ over heads owned by the chosen action of log π(head option)."""
        picked_B_S = logp_B_S_K.gather(2, chosen_B_S[:, :, None]).squeeze(2)
        owned_B_H = chosen_B_S[:, :1] == self.head_owner[None, :]
        return picked_B_S[:, 0] + (picked_B_S[:, 1:] * owned_B_H).sum(1)

    @torch.no_grad()
    def act(
        self,
        features_B_F: torch.Tensor,
        mask_B_M: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        greedy: bool = False,
    ) -> FactoredSample:
        """Sample every head (Gumbel-max with ``generator``) or take the argmax of every head."""
        logp_B_S_K, value_B = self._segment_log_probs(features_B_F, mask_B_M)
        chosen_B_S = _choose(logp_B_S_K, generator, greedy)
        logp_B = self._joint(logp_B_S_K, chosen_B_S)
        action_probs_B_A = logp_B_S_K[:, 0, : self.shape.num_actions].exp()
        return FactoredSample(chosen_B_S[:, 0], chosen_B_S[:, 1:], logp_B, value_B, action_probs_B_A)

    def evaluate(
        self,
        features_B_F: torch.Tensor,
        mask_B_M: torch.Tensor,
        action_B: torch.Tensor,
        heads_B_H: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities, exact entropies and values of given actions (for the PPO update)."""
        logp_B_S_K, value_B = self._segment_log_probs(features_B_F, mask_B_M)
        chosen_B_S = torch.cat([action_B[:, None], heads_B_H], dim=1)
        logp_B = self._joint(logp_B_S_K, chosen_B_S)
        entropy_B_S = -(logp_B_S_K.exp() * logp_B_S_K).sum(-1)
        action_probs_B_A = logp_B_S_K[:, 0, : self.shape.num_actions].exp()
        owner_probs_B_H = action_probs_B_A[:, self.head_owner]
        entropy_B = entropy_B_S[:, 0] + (owner_probs_B_H * entropy_B_S[:, 1:]).sum(1)
        return logp_B, entropy_B, value_B

    def head_probabilities(
        self, features_B_F: torch.Tensor, mask_B_M: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Masked probabilities of the action head and of each argument head (for explanations)."""
        with torch.no_grad():
            logp_B_S_K, _ = self._segment_log_probs(features_B_F, mask_B_M)
        probs = logp_B_S_K.exp()
        sizes = self.shape.head_sizes
        return probs[:, 0, : self.shape.num_actions], [probs[:, 1 + i, :size] for i, size in enumerate(sizes)]


def _choose(logp_B_S_K: torch.Tensor, generator: torch.Generator | None, greedy: bool) -> torch.Tensor:
    if greedy:
        return logp_B_S_K.argmax(dim=-1)
    uniform = torch.rand(logp_B_S_K.shape, generator=generator).clamp_(1e-12, 1.0 - 1e-7)
    return (logp_B_S_K - torch.log(-torch.log(uniform))).argmax(dim=-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flat_parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])


def build_model(shape: ModelShape, *, seed: int | None = None) -> ActorCritic:
    """A fresh network; with ``seed`` its initialisation does not touch the global torch RNG."""
    if seed is None:
        return ActorCritic(shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ActorCritic(shape)
