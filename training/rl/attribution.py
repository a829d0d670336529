"""Which input features drove a neural policy's choice: integrated gradients on the featurized
observation, named in the workflow's own field names.

For the chosen action a: attribution_i = (x_i - b_i) * mean over t in (0, 1] of
d log pi(a | b + t (x - b)) / d x_i, with the all-zero baseline b (every fact unknown, nothing
called) and a midpoint sum of ``steps`` points. Attributions add up (to the approximation) to
log pi(a|x) - log pi(a|b), so a reviewer
reads them as "how much each fact moved the policy towards this action". The action mask of the
real observation is kept along the path: we explain the choice among the actions that were allowed.
"""

from __future__ import annotations

from typing import Any

import torch

from workflows.engine import Observation

__all__ = ["integrated_gradients"]


def integrated_gradients(
    policy: Any, observation: Observation, action_name: str, *, steps: int = 24, top_k: int = 6
) -> list[dict[str, Any]]:
    """The ``top_k`` features by absolute attribution to ``action_name`` (a NeuralPolicy's action),
    each as ``{"feature", "value", "attribution"}``, largest first."""
    if steps < 1 or top_k < 1:
        raise ValueError("steps and top_k must be at least 1")
    names = policy.layout.action_names
    if action_name not in names:
        raise ValueError(f"{action_name!r} is not one of the policy's actions")
    action = names.index(action_name)
    model = policy.model
    features_F = torch.from_numpy(policy.featurizer.transform(observation)).float()
    mask_1_M = torch.from_numpy(policy.layout.mask(observation))[None]
    alphas_S = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path_S_F = (alphas_S[:, None] * features_F[None]).requires_grad_(True)
    action_logp_S_A = model.action_log_probs(path_S_F, mask_1_M.expand(steps, -1))
    (gradients_S_F,) = torch.autograd.grad(action_logp_S_A[:, action].sum(), path_S_F)
    attribution_F = features_F * gradients_S_F.mean(dim=0)
    order = torch.argsort(attribution_F.abs(), descending=True)[:top_k]
    feature_names = policy.featurizer.names
    return [
        {
            "feature": feature_names[i],
            "value": round(float(features_F[i]), 4),
            "attribution": round(float(attribution_F[i]), 4),
        }
        for i in order.tolist()
        if float(attribution_F[i]) != 0.0
    ]
