"""Gymnasium adapter: a workflow environment for other RL libraries (Stable-Baselines3, …).

You are at the RL side's side door. :class:`WorkflowGymEnv` wraps one engine ``Environment``
and a list of cases (one drawn per ``reset``) behind the Gymnasium API:

- **observation**: ``Box(-24, 24, (featurizer.size,), float32)`` — the :class:`Featurizer`
  vector (every entry is clipped to that range), names in ``featurizer.names``;
- **action**: ``MultiDiscrete([len(spec.action_names), *argument head sizes])`` — the action
  index (tools, then decisions), then one index per decision-argument head: each enum
  argument's choice, each number/date argument's candidate slot (``layout.heads`` names them).
  Heads of decisions other than the chosen action are ignored;
- **mask**: ``info["action_mask"]`` and :meth:`action_masks` give the flat boolean mask in the
  same layout (the concatenation of every dimension's mask, as sb3-contrib's MaskablePPO
  expects). Masking is optional: an action outside the mask goes to the engine as is, which
  penalises it (``invalid_action_penalty``) or, for a repeated tool, charges a wasted step;
- **reward**: the engine's per-step reward (rubric score at the end, step cost, shaping);
- **termination**: ``terminated`` when the episode ends, including when ``max_steps`` ran out —
  the rubric scores that end, so it is a real terminal, and ``truncated`` is always False
  (``info["truncated"]`` tells which). The final info also has ``score``, ``gated``,
  ``criteria`` (applied criteria's scores), ``decision`` and ``expected``.

``reset(options={"case_index": i})`` picks a case; otherwise one is drawn with the env's
seeded ``np_random``. Features, masks and explanation facts are remembered per case and revealed
tools (``vec.StepCache``; the engine is deterministic); the environments of one vector may share
one ``cache``. This module is the only one in ``training.rl`` that imports gymnasium.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from workflows.engine import Action, CaseData, Environment, Observation

from .actions import ActionLayout
from .features import DATE_CLIP, VALUE_CLIP, Featurizer, collect_observations
from .vec import StepCache

__all__ = ["WorkflowGymEnv"]

_BOUND = float(max(DATE_CLIP, VALUE_CLIP))


class WorkflowGymEnv(gym.Env[np.ndarray, np.ndarray]):
    """One workflow environment as a Gymnasium env with a MultiDiscrete factored action."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        env_factory: Callable[[], Environment],
        cases: Sequence[CaseData],
        featurizer: Featurizer | None = None,
        seed: int | None = None,
        *,
        cache: StepCache | None = None,
    ) -> None:
        if not cases:
            raise ValueError("cases is empty")
        self.env = env_factory()
        self.workflow_spec = self.env.spec
        self.cases = list(cases)
        self.featurizer = featurizer or Featurizer.fit(
            self.workflow_spec, collect_observations(self.env, self.cases[:256])
        )
        self.layout = ActionLayout(self.workflow_spec, self.featurizer)
        self.observation_space = spaces.Box(
            low=-_BOUND, high=_BOUND, shape=(self.featurizer.size,), dtype=np.float32
        )
        self.action_space = spaces.MultiDiscrete([self.layout.num_actions, *self.layout.head_sizes])
        # Features, masks and fact lists per case and revealed tools (the engine is deterministic);
        # environments of one vector may share one cache (same featurizer and cases).
        self._cache = cache if cache is not None else StepCache(self.featurizer, self.layout)
        self._features_row = np.zeros(self.featurizer.size, dtype=np.float32)
        self._observation: Observation | None = None
        self._case: CaseData | None = None
        self._mask = np.ones(self.layout.mask_size, dtype=bool)
        if seed is not None:
            super().reset(seed=seed)
            self.action_space.seed(seed)

    # -- Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "case_index" in options:
            case = self.cases[int(options["case_index"])]
        else:
            case = self.cases[int(self.np_random.integers(len(self.cases)))]
        self._case = case
        self._observation = self.env.reset(case)
        return self._features(), {"action_mask": self._mask.copy(), "case_id": case.id}

    def step(
        self, action: np.ndarray | Sequence[int]
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._observation is None:
            raise RuntimeError("call reset() before step()")
        engine_action = self.decode(action)
        observation, reward, done, info = self.env.step(engine_action)
        self._observation = observation
        out: dict[str, Any] = {"error": info.get("error")}
        if done:
            trajectory = self.env.trajectory
            score = info.get("score")
            out.update(
                truncated=bool(info.get("truncated")),
                score=score.total if score is not None else 0.0,
                gated=bool(score.gated) if score is not None else False,
                criteria={r.name: r.score for r in score.breakdown if r.applied} if score is not None else {},
                decision=trajectory.decision.name if trajectory.decision else None,
                expected=self._case.expected.decision if self._case and self._case.expected else None,
            )
        features = self._features()
        out["action_mask"] = self._mask.copy()
        return features, float(reward), bool(done), False, out

    def action_masks(self) -> np.ndarray:
        """The flat mask of the current state (sb3-contrib MaskablePPO reads this)."""
        return self._mask.copy()

    # -- helpers

    def decode(self, action: np.ndarray | Sequence[int]) -> Action:
        """The engine Action for a MultiDiscrete action in the current state."""
        assert self._observation is not None
        indices = [int(x) for x in np.asarray(action).reshape(-1)]
        action_index, heads = indices[0], indices[1:]
        observation = self._observation
        if action_index < self.layout.num_tools:
            return self.layout.build_action(action_index, heads, observation, explain=False)
        facts = self._cache.facts(observation, id(self._case))
        return self.layout.build_action(action_index, heads, observation, facts=facts)

    def _features(self) -> np.ndarray:
        assert self._observation is not None
        self._cache.write(self._observation, id(self._case), self._features_row, self._mask)
        return self._features_row.copy()
