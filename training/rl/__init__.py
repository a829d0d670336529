"""Reinforcement learning for workflows: pure torch, imports no Django.

You are at the RL side's front door. The pieces, in the order a training job meets them:

- ``features``: :class:`Featurizer` — spec-derived observation features with names, fitted on
  sample observations (``Featurizer.fit(spec, observations)``);
- ``actions``: :class:`ActionLayout` — the factored action space (tool or decision, enum
  choices, amounts pointed at from observed values) and its mask;
- ``nets``: :class:`ActorCritic` — the MLP actor-critic;
- ``ppo``: :class:`PPOConfig` and :func:`train` — the PPO loop;
- ``curriculum``, ``vec`` and ``rollout``: difficulty schedule, the vector of environments and
  rollout collection (in this process or in forked worker processes);
- ``checkpoint``: atomic, self-describing checkpoints and :func:`load_policy` for serving;
- ``policy``: :class:`NeuralPolicy` — a trained network as an engine ``Policy``;
- ``evaluate``: :func:`evaluate_policy` and friends (``summary`` holds the shared definition);
- ``quality``: the claims-pack quality bar (``python -m training.rl.quality``);
- ``gym_adapter``: ``WorkflowGymEnv`` for other RL libraries (imports gymnasium; not imported
  here, so this package does not need it).
"""

from __future__ import annotations

from .actions import ActionLayout
from .checkpoint import Checkpoint, CheckpointError, latest_checkpoint, load_policy, read_checkpoint
from .curriculum import Curriculum
from .evaluate import compare_policies, evaluate_policy, gap_closed
from .features import Featurizer, collect_observations, spec_hash
from .nets import ActorCritic, ModelShape
from .policy import NeuralPolicy
from .ppo import PPOConfig, TrainResult, train

__all__ = [
    "ActionLayout",
    "ActorCritic",
    "Checkpoint",
    "CheckpointError",
    "Curriculum",
    "Featurizer",
    "ModelShape",
    "NeuralPolicy",
    "PPOConfig",
    "TrainResult",
    "collect_observations",
    "compare_policies",
    "evaluate_policy",
    "gap_closed",
    "latest_checkpoint",
    "load_policy",
    "read_checkpoint",
    "spec_hash",
    "train",
]
