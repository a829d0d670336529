"""A trained network as an engine Policy: ``reset(seed)``, ``act(observation) -> Action``.

You are at the RL side's service counter. :class:`NeuralPolicy` featurizes the observation,
masks what is not allowed (``actions.py``), and picks the argmax of every head (``deterministic``,
the default for serving) or samples them (seeded by ``reset(seed)``). The Action it returns
carries

- the decision's arguments (amounts pointed at from revealed values, enums chosen);
- an explanation naming the facts it saw: the argument sources (``amount 24,163.14 =
  compute_payout.payout``) and every fact the called tools revealed, in the workflow's words;
- ``confidence``: the probability of exactly this action — the action head's probability times
  the chosen options' probabilities of the decision's argument heads;
- ``probabilities``: the action head's (masked) distribution over ``spec.action_names``.
"""

from __future__ import annotations

from typing import Any

import torch

from workflows.engine import Action, Observation, WorkflowSpec

from .actions import ActionLayout
from .features import Featurizer
from .nets import ActorCritic

__all__ = ["NeuralPolicy"]


class NeuralPolicy:
    """Engine ``Policy`` over a trained :class:`ActorCritic`."""

    def __init__(
        self,
        model: ActorCritic,
        featurizer: Featurizer,
        spec: WorkflowSpec,
        *,
        deterministic: bool = True,
        seed: int | None = None,
    ) -> None:
        if model.shape.num_features != featurizer.size:
            raise ValueError(
                f"model expects {model.shape.num_features} features, featurizer makes {featurizer.size}"
            )
        self.model = model.eval()
        self.featurizer = featurizer
        self.spec = spec
        self.layout = ActionLayout(spec, featurizer)
        if list(self.layout.head_sizes) != list(model.shape.head_sizes):
            raise ValueError("model argument heads do not match the spec's decision arguments")
        self.deterministic = deterministic
        self._generator = torch.Generator()
        self._generator.manual_seed(0 if seed is None else seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._generator.manual_seed(seed)

    def act(self, observation: Observation) -> Action:
        features_1_F = torch.from_numpy(self.featurizer.transform(observation))[None]
        mask_1_M = torch.from_numpy(self.layout.mask(observation))[None]
        sample = self.model.act(features_1_F, mask_1_M, generator=self._generator, greedy=self.deterministic)
        action_index = int(sample.action_B[0])
        head_indices = [int(i) for i in sample.heads_B_H[0]]
        probs_A = sample.action_probs_B_A[0]
        probabilities = {
            name: round(float(p), 6) for name, p in zip(self.layout.action_names, probs_A, strict=True)
        }
        confidence = float(sample.logp_B[0].exp())
        action = self.layout.build_action(
            action_index,
            head_indices,
            observation,
            confidence=confidence,
            probabilities=probabilities,
        )
        if action.is_decision:
            ranked = sorted(
                (p, name) for name, p in probabilities.items() if name != action.name and p >= 0.005
            )[::-1][:2]
            if ranked:
                others = ", ".join(f"{name} {p:.2f}" for p, name in ranked)
                action = Action.decide(
                    action.name,
                    action.arguments,
                    f"{action.explanation} Alternatives: {others}.",
                    confidence=action.confidence,
                    probabilities=action.probabilities,
                )
        return action

    def feature_attributions(
        self, observation: Observation, action_name: str, *, top_k: int = 6
    ) -> list[dict[str, Any]]:
        """The input features that drove choosing ``action_name`` here (integrated gradients)."""
        from .attribution import integrated_gradients

        return integrated_gradients(self, observation, action_name, top_k=top_k)
