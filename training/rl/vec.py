"""A vector of engine Environments stepped together, for batched rollouts.

You are in the RL side's arena stands. :class:`VecEnv` holds ``num_envs`` plain
``Environment`` objects (from ``env_factory``), a case sampler and a :class:`StepCache` of
features and masks shared by the slots. ``step`` takes the network's chosen indices for every
slot, turns them into engine Actions (decisions with an explanation, since the rubric scores
it), steps each environment, and when an episode ends records its :class:`EpisodeResult` and
resets the slot on a fresh training case — the returned features are then the new episode's
first observation.

For exact resumption the in-flight episodes are part of the state: each slot's case id and the
indices it chose so far. The environment is deterministic, so :meth:`load_state_dict` replays
them and every slot is back where it was when the checkpoint was written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workflows.engine import CaseData, Environment, Observation

from .actions import ActionLayout
from .curriculum import CaseSampler
from .features import Featurizer

__all__ = ["EpisodeResult", "StepCache", "VecEnv"]


class StepCache:
    """Features, masks and fact lists of observations, per case and what has been revealed.

    The engine is deterministic — a tool's result depends only on the case and the reference
    tables — so an observation's features (all but the progress numbers), its mask and the
    facts an explanation recites are functions of (case, tools revealed in order, whether a
    tool may still be called). Training revisits the same cases over and over; after the first
    visits a step costs a dictionary look-up and two small copies. ``case_key`` must identify
    the case (the training loop passes the identity of its CaseData object).
    """

    def __init__(self, featurizer: Featurizer, layout: ActionLayout, *, limit: int = 200_000) -> None:
        self.featurizer = featurizer
        self.layout = layout
        self.limit = limit
        self._rows: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
        self._blocks: dict[Any, Any] = {}
        self._facts: dict[Any, str] = {}
        self._progress = featurizer.size - featurizer.progress_size

    def write(
        self, observation: Observation, case_key: Any, features_out: np.ndarray, mask_out: np.ndarray
    ) -> None:
        """Write ``observation``'s features and mask into the given rows."""
        key = (case_key, tuple(observation.revealed), observation.steps_left > 1)
        hit = self._rows.get(key)
        if hit is None:
            if len(self._rows) >= self.limit:
                self._rows.clear()
                self._blocks.clear()
            features = self.featurizer.transform(observation, blocks=self._blocks, case_key=case_key)
            hit = self._rows[key] = (features, self.layout.mask(observation))
        features_out[:] = hit[0]
        features_out[self._progress :] = self.featurizer.step_values(observation)
        mask_out[:] = hit[1]

    def facts(self, observation: Observation, case_key: Any) -> str:
        """``layout.facts_text(observation)``, remembered."""
        key = (case_key, tuple(observation.revealed))
        text = self._facts.get(key)
        if text is None:
            if len(self._facts) >= self.limit:
                self._facts.clear()
            text = self._facts[key] = self.layout.facts_text(observation)
        return text


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """How one finished training episode went."""

    case_id: str
    difficulty: int
    episode_return: float
    length: int
    score: float
    gated: bool
    decision: str | None
    expected: str | None
    truncated: bool
    criteria: dict[str, float] = field(default_factory=dict)  # applied criteria only: name -> score

    @property
    def correct(self) -> bool:
        return self.expected is not None and self.decision == self.expected


class VecEnv:
    """``num_envs`` environments, auto-reset on training cases drawn by ``sampler``."""

    def __init__(
        self,
        env_factory: Callable[[], Environment],
        featurizer: Featurizer,
        layout: ActionLayout,
        sampler: CaseSampler,
        num_envs: int,
    ) -> None:
        self.envs = [env_factory() for _ in range(num_envs)]
        self.featurizer = featurizer
        self.layout = layout
        self.sampler = sampler
        self.num_envs = num_envs
        self.cache = StepCache(featurizer, layout)
        self.features_N_F = np.zeros((num_envs, featurizer.size), dtype=np.float32)
        self.mask_N_M = np.zeros((num_envs, layout.mask_size), dtype=bool)
        self._observations: list[Observation] = []
        self._cases: list[CaseData] = []
        self._chosen: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in range(num_envs)]
        self._returns = [0.0] * num_envs

    # -- stepping

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        """Start every slot on a fresh training case."""
        self._observations = []
        self._cases = []
        for slot in range(self.num_envs):
            case = self.sampler.sample()
            self._cases.append(case)
            self._observations.append(self.envs[slot].reset(case))
            self._chosen[slot] = []
            self._returns[slot] = 0.0
            self._write(slot)
        return self.features_N_F, self.mask_N_M

    def _write(self, slot: int) -> None:
        self.cache.write(
            self._observations[slot], id(self._cases[slot]), self.features_N_F[slot], self.mask_N_M[slot]
        )

    def step(
        self, action_N: np.ndarray | Sequence[int], heads_N_H: np.ndarray | Sequence[Sequence[int]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[EpisodeResult]]:
        """Act in every slot; returns features, masks, rewards, dones and the finished episodes."""
        rewards_N = np.zeros(self.num_envs, dtype=np.float32)
        dones_N = np.zeros(self.num_envs, dtype=np.float32)
        finished: list[EpisodeResult] = []
        layout = self.layout
        num_tools = layout.num_tools
        actions = action_N.tolist() if isinstance(action_N, np.ndarray) else list(action_N)
        all_heads = heads_N_H.tolist() if isinstance(heads_N_H, np.ndarray) else [list(h) for h in heads_N_H]
        for slot in range(self.num_envs):
            action_index = int(actions[slot])
            heads = tuple(all_heads[slot])
            env = self.envs[slot]
            observation = self._observations[slot]
            if action_index >= num_tools:
                facts = self.cache.facts(observation, id(self._cases[slot]))
                action = layout.build_action(action_index, heads, observation, facts=facts)
            else:
                action = layout.build_action(action_index, heads, observation, explain=False)
            observation, reward, done, info = env.step(action)
            self._chosen[slot].append((action_index, heads))
            self._returns[slot] += reward
            rewards_N[slot] = reward
            if done:
                dones_N[slot] = 1.0
                finished.append(self._result(slot, info))
                case = self.sampler.sample()
                self._cases[slot] = case
                observation = env.reset(case)
                self._chosen[slot] = []
                self._returns[slot] = 0.0
            self._observations[slot] = observation
            self._write(slot)
        return self.features_N_F, self.mask_N_M, rewards_N, dones_N, finished

    def _result(self, slot: int, info: Mapping[str, Any]) -> EpisodeResult:
        env = self.envs[slot]
        trajectory = env.trajectory
        case = self._cases[slot]
        score = info.get("score")
        criteria = (
            {result.name: result.score for result in score.breakdown if result.applied} if score else {}
        )
        return EpisodeResult(
            case_id=case.id,
            difficulty=case.difficulty,
            episode_return=self._returns[slot],
            length=len(trajectory.steps),
            score=score.total if score else 0.0,
            gated=bool(score.gated) if score else False,
            decision=trajectory.decision.name if trajectory.decision else None,
            expected=case.expected.decision if case.expected else None,
            truncated=trajectory.truncated,
            criteria=criteria,
        )

    # -- resumption

    def state_dict(self) -> dict[str, Any]:
        return {
            "cases": [case.id for case in self._cases],
            "chosen": [[[a, list(h)] for a, h in chosen] for chosen in self._chosen],
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any], cases: Sequence[CaseData]) -> bool:
        """Restore the sampler and replay the in-flight episodes. False (and a plain ``reset``) when
        the saved slots do not fit (another ``num_envs``, or a case id no longer in ``cases``)."""
        self.sampler.load_state_dict(state["sampler"])
        by_id = {case.id: case for case in cases}
        ids = state.get("cases") or []
        if len(ids) != self.num_envs or any(case_id not in by_id for case_id in ids):
            self.reset()
            return False
        self._observations = []
        self._cases = []
        for slot, case_id in enumerate(ids):
            case = by_id[case_id]
            env = self.envs[slot]
            observation = env.reset(case)
            self._cases.append(case)
            self._chosen[slot] = []
            self._returns[slot] = 0.0
            for action_index, heads in state["chosen"][slot]:
                action = self.layout.build_action(
                    action_index, heads, observation, explain=action_index >= self.layout.num_tools
                )
                observation, reward, _, _ = env.step(action)
                self._chosen[slot].append((int(action_index), tuple(int(h) for h in heads)))
                self._returns[slot] += reward
            self._observations.append(observation)
            self._write(slot)
        return True
