"""Red-teaming a rubric: would a reward hacker score well under it?

You are in the engine's inspection room. Before a rubric trains anything, run the exploit
policies (always approve, always deny, skip all checks, …) over a sample of cases and report
their mean scores; any exploit scoring at or above ``threshold`` is flagged, because a learner
would find that shortcut too. A reference policy (the pack's solver) gives the score that
honest work reaches under the same rubric, for comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .environment import CaseData, Environment, PackTool
from .policies import EXPLOIT_POLICIES, Policy, run_episode
from .rubric import Rubric
from .spec import WorkflowSpec

__all__ = ["RedTeamReport", "mean_score", "rubric_redteam"]


@dataclass(frozen=True, slots=True)
class RedTeamReport:
    """Mean rubric score per exploit policy; ``flagged`` lists those at or above ``threshold``."""

    scores: dict[str, float]
    flagged: list[str]
    threshold: float
    reference_score: float | None = None

    @property
    def passed(self) -> bool:
        return not self.flagged

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": dict(self.scores),
            "flagged": list(self.flagged),
            "threshold": self.threshold,
            "reference_score": self.reference_score,
        }


def mean_score(env: Environment, policy: Policy, cases: Sequence[CaseData]) -> float:
    """Mean final rubric score of ``policy`` over ``cases`` (0 for an empty sample)."""
    if env.rubric is None:
        raise ValueError("mean_score needs an environment with a rubric")
    total = 0.0
    for position, case in enumerate(cases):
        run_episode(env, policy, case, seed=position)
        score = env.score
        total += score.total if score is not None else 0.0
    return total / len(cases) if cases else 0.0


def rubric_redteam(
    spec: WorkflowSpec,
    rubric: Rubric,
    cases: Sequence[CaseData],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    pack_tools: Mapping[str, PackTool] | None = None,
    threshold: float = 0.5,
    reference_policy: Policy | None = None,
) -> RedTeamReport:
    """Score every exploit in ``EXPLOIT_POLICIES`` (and the optional reference) on ``cases``."""
    env = Environment(spec, tables, rubric=rubric, pack_tools=pack_tools)
    scores = {name: mean_score(env, factory(spec), cases) for name, factory in EXPLOIT_POLICIES.items()}
    flagged = [name for name, score in scores.items() if score >= threshold]
    reference = mean_score(env, reference_policy, cases) if reference_policy is not None else None
    return RedTeamReport(scores=scores, flagged=flagged, threshold=threshold, reference_score=reference)
