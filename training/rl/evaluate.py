"""Evaluating any engine Policy on labelled cases: scores, pass rates, accuracy, confusion, gates.

You are in the RL side's exam hall. :func:`evaluate_policy` runs one episode per case (each in
a fresh ``reset``, policy reseeded per episode so sampling policies are reproducible) and
returns a JSON-ready dict (computed by ``summary.summarise_episodes``, the same definition used
to recompute a report from stored runs):

- ``score/mean`` — mean rubric total; ``score/min``;
- ``pass_rate/<criterion>`` — share of episodes where the criterion *applied* and passed, over
  the episodes where it applied (criteria that never applied are left out);
- ``outcome/accuracy`` — decision name equals the expected decision (labelled cases only);
  ``outcome/exact`` — decision and every expected argument equal (numbers within 0.01);
- ``amount/mae`` — mean absolute error of numeric arguments, over cases where the expected
  decision was taken and carries numbers (e.g. approvals and their amount); ``amount/count``;
- ``confusion`` — ``{expected decision: {chosen decision or "none": count}}``;
- ``gates/triggered`` — episodes a gate zeroed; ``gates/by_criterion`` per gate;
- ``episode/length``, ``episode/truncated``, ``episodes``.

:func:`compare_policies` evaluates several and :func:`gap_closed` computes the quality bar's
figure: the share of the gap between a baseline and the reference that a policy closes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workflows.engine import CaseData, Environment, Policy, run_episode

from .summary import EpisodeSummary, summarise_episodes

__all__ = ["compare_policies", "evaluate_policy", "gap_closed"]


def evaluate_policy(
    policy: Policy,
    env_factory: Callable[[], Environment],
    cases: Sequence[CaseData],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Run ``policy`` once on each case and summarise (see the module docstring)."""
    if not cases:
        raise ValueError("no cases to evaluate on")
    env = env_factory()
    episodes: list[EpisodeSummary] = []
    for index, case in enumerate(cases):
        trajectory = run_episode(env, policy, case, seed=seed + index)
        score = env.score
        decision = trajectory.decision
        episodes.append(
            EpisodeSummary(
                score=score.total if score is not None else None,
                breakdown=[result.to_dict() for result in score.breakdown] if score is not None else [],
                length=len(trajectory.steps),
                truncated=trajectory.truncated,
                decision=decision.name if decision is not None else None,
                arguments=dict(decision.arguments) if decision is not None else {},
                expected=case.expected.to_dict() if case.expected is not None else None,
            )
        )
    return summarise_episodes(episodes)


def compare_policies(
    policies: Mapping[str, Policy],
    env_factory: Callable[[], Environment],
    cases: Sequence[CaseData],
    *,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """``evaluate_policy`` for each named policy, on the same cases."""
    return {name: evaluate_policy(policy, env_factory, cases, seed=seed) for name, policy in policies.items()}


def gap_closed(score: float, *, baseline: float, reference: float) -> float:
    """Share of the gap from ``baseline`` to ``reference`` that ``score`` closes (1.0 = reference)."""
    gap = reference - baseline
    if gap <= 0:
        return 1.0 if score >= reference else 0.0
    return (score - baseline) / gap
