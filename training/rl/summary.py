"""Summarising episodes into evaluation metrics — one definition for live evaluation and for
recomputing a report from stored runs.

An :class:`EpisodeSummary` is what an evaluation needs to know about one episode; it can be built
from an engine trajectory and score, or from a stored Run row. :func:`summarise_episodes` turns a
list of them into the JSON-ready metrics documented in :mod:`training.rl.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EpisodeSummary", "summarise_episodes"]


@dataclass(frozen=True, slots=True)
class EpisodeSummary:
    score: float | None  # rubric total, None when the episode was not scored
    breakdown: Sequence[Mapping[str, Any]]  # CriterionResult.to_dict() items
    length: int
    truncated: bool
    decision: str | None  # chosen decision name, None when the episode ended undecided
    arguments: Mapping[str, Any] = field(default_factory=dict)
    expected: Mapping[str, Any] | None = None  # {"decision": …, "arguments": {…}} for labelled cases


def _same_arguments(expected: Mapping[str, Any], got: Mapping[str, Any], errors: list[float]) -> bool:
    same = True
    for name, want in expected.items():
        value = got.get(name)
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                errors.append(abs(float(value) - float(want)))
                same = same and abs(float(value) - float(want)) <= 0.01
            else:
                same = False
        elif isinstance(want, str) and isinstance(value, str):
            same = same and want.lower() == value.lower()
        else:
            same = same and want == value
    return same


def summarise_episodes(episodes: Sequence[EpisodeSummary]) -> dict[str, Any]:
    """Mean and min score, pass rate per criterion, outcome accuracy and exactness, amount error,
    confusion matrix (expected by chosen) and gate triggers over ``episodes``."""
    if not episodes:
        raise ValueError("no episodes to summarise")
    scores: list[float] = []
    applied: dict[str, int] = {}
    passed: dict[str, int] = {}
    gates: dict[str, int] = {}
    gated = labelled = correct = exact = 0
    amount_errors: list[float] = []
    confusion: dict[str, dict[str, int]] = {}
    for episode in episodes:
        if episode.score is not None:
            scores.append(episode.score)
            gate_failed = False
            for result in episode.breakdown:
                if not result.get("applied"):
                    continue
                name = result["name"]
                applied[name] = applied.get(name, 0) + 1
                passed[name] = passed.get(name, 0) + int(bool(result.get("passed")))
                if result.get("gate") and not result.get("passed"):
                    gates[name] = gates.get(name, 0) + 1
                    gate_failed = True
            gated += int(gate_failed)
        if episode.expected is None:
            continue
        labelled += 1
        chosen = episode.decision or "none"
        row = confusion.setdefault(episode.expected["decision"], {})
        row[chosen] = row.get(chosen, 0) + 1
        if chosen != episode.expected["decision"]:
            continue
        correct += 1
        exact += int(
            _same_arguments(episode.expected.get("arguments") or {}, episode.arguments, amount_errors)
        )
    count = len(episodes)
    report: dict[str, Any] = {
        "episodes": count,
        "score/mean": sum(scores) / len(scores) if scores else 0.0,
        "score/min": min(scores) if scores else 0.0,
        "episode/length": sum(e.length for e in episodes) / count,
        "episode/truncated": sum(int(e.truncated) for e in episodes) / count,
        "gates/triggered": gated,
        "gates/by_criterion": dict(sorted(gates.items())),
        "confusion": {k: dict(sorted(v.items())) for k, v in sorted(confusion.items())},
    }
    for name in sorted(applied):
        report[f"pass_rate/{name}"] = passed[name] / applied[name]
    if labelled:
        report["outcome/accuracy"] = correct / labelled
        report["outcome/exact"] = exact / labelled
    report["amount/mae"] = sum(amount_errors) / len(amount_errors) if amount_errors else 0.0
    report["amount/count"] = len(amount_errors)
    return report
