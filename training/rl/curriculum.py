"""Difficulty curriculum: train on easy cases first, harder ones once the easy ones are solved.

You are in the RL side's school year. Training cases are grouped by ``case.difficulty``. The
curriculum starts at the lowest difficulty and advances one level when the success rate — the
share of the last ``window`` finished episodes whose decision matched the case's expected
decision — reaches ``threshold``. At a level the pool is every case *up to* that difficulty, so
earlier lessons keep being rehearsed instead of forgotten. Disabled, the pool is every case
from the start (and ``level`` reports the highest difficulty).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from workflows.engine import CaseData

__all__ = ["CaseSampler", "Curriculum"]


class Curriculum:
    """Which training cases are in play, and when to move on."""

    def __init__(
        self, cases: Sequence[CaseData], *, enabled: bool, threshold: float = 0.9, window: int = 500
    ) -> None:
        if not cases:
            raise ValueError("train_cases is empty")
        self.cases = list(cases)
        self.levels: tuple[int, ...] = tuple(sorted({case.difficulty for case in self.cases}))
        self.enabled = enabled
        self.threshold = threshold
        self.window = window
        self.level_index = 0 if enabled else len(self.levels) - 1
        self._recent: deque[bool] = deque(maxlen=window)
        self._pools: dict[int, list[CaseData]] = {}

    @property
    def level(self) -> int:
        """The current difficulty (the highest difficulty in the pool)."""
        return self.levels[self.level_index]

    @property
    def success_rate(self) -> float:
        return sum(self._recent) / len(self._recent) if self._recent else 0.0

    def pool(self) -> list[CaseData]:
        index = self.level_index
        if index not in self._pools:
            top = self.levels[index]
            self._pools[index] = [case for case in self.cases if case.difficulty <= top]
        return self._pools[index]

    def record(self, correct: bool) -> bool:
        """Count one finished episode; True when this advanced the level."""
        if not self.enabled or self.level_index == len(self.levels) - 1:
            return False
        self._recent.append(bool(correct))
        if len(self._recent) == self.window and self.success_rate >= self.threshold:
            self.level_index += 1
            self._recent.clear()
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"level_index": self.level_index, "recent": [bool(x) for x in self._recent]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level_index = min(int(state["level_index"]), len(self.levels) - 1)
        self._recent = deque((bool(x) for x in state["recent"]), maxlen=self.window)


class CaseSampler:
    """Draws the next training case from the curriculum's pool with its own seeded generator."""

    def __init__(self, curriculum: Curriculum, seed: int | str) -> None:
        self.curriculum = curriculum
        self.rng = random.Random(f"case-sampler:{seed}")

    def sample(self) -> CaseData:
        pool = self.curriculum.pool()
        return pool[self.rng.randrange(len(pool))]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "curriculum": self.curriculum.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.curriculum.load_state_dict(state["curriculum"])
