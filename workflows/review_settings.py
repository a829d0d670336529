"""A workflow's autonomy and review settings, and the risk rules experts write for it.

You are in the review desk's rule binder. Pure Python over the engine (no Django), so the
settings can be read, validated and applied anywhere:

- ``confidence_threshold``: an autonomous version executes a decision only when its confidence
  is at or above this, and no risk rule fires;
- ``risk_rules``: expert-written safe expressions (``workflows.engine.expressions``) over the
  case fields, the tool results revealed in the run, ``decision`` (its name) and ``arguments``,
  each with a risk level (low < medium < high < critical). A rule that fires sends the decision
  to review at any stage; a rule that cannot be evaluated (say it reads a tool the policy never
  called) counts as fired: what cannot be shown safe is reviewed;
- ``four_eyes_level``: decisions whose risk is at or above this level need approvals from two
  different reviewers ("off" disables it);
- ``agreement_threshold`` and ``agreement_window``: a version may be promoted from supervised to
  autonomous only when reviewers approved at least this share of its last ``agreement_window``
  reviewed decisions;
- ``service_level_hours``: how long a decision may wait for review before it is overdue;
- ``claim_minutes``: how long a reviewer's claim on a queue item lasts before it returns;
- ``execute_on_approval``: approved and corrected decisions execute at once (default), or wait
  for ``decision_execute`` (an integration that confirms it has carried them out).

Settings are stored as a plain dict on the Workflow; missing keys take the defaults below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.engine.errors import ExpressionError, Problem, SpecError
from workflows.engine.expressions import Expression, compile_expression
from workflows.engine.spec import WorkflowSpec

__all__ = [
    "FOUR_EYES_OFF",
    "RISK_LEVELS",
    "ReviewSettings",
    "RiskAssessment",
    "RiskRule",
    "risk_level_name",
    "risk_rank",
]

RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
FOUR_EYES_OFF = "off"
# Names a risk rule may read besides the case fields and tool results.
DECISION_NAMES = frozenset({"decision", "arguments"})


def risk_rank(level: str) -> int:
    """1 for low … 4 for critical; 0 for no risk."""
    return RISK_LEVELS.index(level) + 1


def risk_level_name(rank: int) -> str:
    """The name of a stored rank: "none" for 0."""
    return RISK_LEVELS[rank - 1] if rank > 0 else "none"


@dataclass(frozen=True, slots=True)
class RiskRule:
    """``when`` holds → the decision carries ``level`` risk and waits for review."""

    name: str
    when: str
    level: str
    description: str = ""
    compiled: Expression | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "when": self.when, "level": self.level, "description": self.description}


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """The risk rules that fired on one outcome, and the highest level among them."""

    fired: tuple[dict[str, Any], ...]
    rank: int

    @property
    def level(self) -> str:
        return risk_level_name(self.rank)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "fired": list(self.fired)}


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    """One workflow's autonomy and review settings (see the module docstring for each field)."""

    confidence_threshold: float = 0.9
    risk_rules: tuple[RiskRule, ...] = ()
    four_eyes_level: str = "high"
    agreement_threshold: float = 0.95
    agreement_window: int = 50
    service_level_hours: float = 24.0
    claim_minutes: int = 30
    execute_on_approval: bool = True

    # -- reading and writing

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, spec: WorkflowSpec | None = None) -> ReviewSettings:
        """Validate ``data`` (missing keys take the defaults). With ``spec``, risk rules may read only
        its case fields and tools plus ``decision`` and ``arguments``. Raises SpecError whose
        problems are keyed by field: ``confidence_threshold``, ``risk_rules[1].when``, …"""
        return _SettingsReader(spec).read(data or {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence_threshold": self.confidence_threshold,
            "risk_rules": [rule.to_dict() for rule in self.risk_rules],
            "four_eyes_level": self.four_eyes_level,
            "agreement_threshold": self.agreement_threshold,
            "agreement_window": self.agreement_window,
            "service_level_hours": self.service_level_hours,
            "claim_minutes": self.claim_minutes,
            "execute_on_approval": self.execute_on_approval,
        }

    # -- applying

    def assess(
        self,
        *,
        fields: Mapping[str, Any],
        revealed: Mapping[str, Any],
        decision: str,
        arguments: Mapping[str, Any],
    ) -> RiskAssessment:
        """Evaluate every risk rule on one outcome. A rule that cannot be evaluated fires."""
        context = {**fields, **revealed, "decision": decision, "arguments": dict(arguments)}
        fired: list[dict[str, Any]] = []
        rank = 0
        for rule in self.risk_rules:
            assert rule.compiled is not None
            try:
                holds = bool(rule.compiled.evaluate(context))
                error = None
            except ExpressionError as exc:
                holds, error = True, str(exc)
            if holds:
                entry = {"name": rule.name, "level": rule.level, "when": rule.when}
                if error:
                    entry["error"] = f"could not evaluate, treated as fired: {error}"
                fired.append(entry)
                rank = max(rank, risk_rank(rule.level))
        return RiskAssessment(tuple(fired), rank)

    def approvals_required(self, risk_rank_: int) -> int:
        """Two approvals from different reviewers at or above the four-eyes level, else one."""
        if self.four_eyes_level == FOUR_EYES_OFF or risk_rank_ == 0:
            return 1
        return 2 if risk_rank_ >= risk_rank(self.four_eyes_level) else 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _SettingsReader:
    def __init__(self, spec: WorkflowSpec | None) -> None:
        self.spec = spec
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def read(self, data: Mapping[str, Any]) -> ReviewSettings:
        if not isinstance(data, Mapping):
            raise SpecError([Problem("", "review settings must be an object")], "review settings")
        defaults = ReviewSettings()
        known = set(defaults.to_dict())
        for key in data:
            if key not in known:
                self.problem(str(key), f"unknown setting (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        values["confidence_threshold"] = self._fraction(data, "confidence_threshold", defaults)
        values["agreement_threshold"] = self._fraction(data, "agreement_threshold", defaults)
        values["agreement_window"] = self._whole(data, "agreement_window", defaults, maximum=100_000)
        values["claim_minutes"] = self._whole(data, "claim_minutes", defaults, maximum=24 * 60)
        hours = data.get("service_level_hours", defaults.service_level_hours)
        if not _is_number(hours) or not 0 < hours <= 24 * 365:
            self.problem("service_level_hours", "must be a number of hours above 0 (at most a year)")
            hours = defaults.service_level_hours
        values["service_level_hours"] = float(hours)
        level = data.get("four_eyes_level", defaults.four_eyes_level)
        if level != FOUR_EYES_OFF and level not in RISK_LEVELS:
            self.problem("four_eyes_level", f"must be one of {', '.join((*RISK_LEVELS, FOUR_EYES_OFF))}")
            level = defaults.four_eyes_level
        values["four_eyes_level"] = level
        execute = data.get("execute_on_approval", defaults.execute_on_approval)
        if not isinstance(execute, bool):
            self.problem("execute_on_approval", "must be true or false")
            execute = defaults.execute_on_approval
        values["execute_on_approval"] = execute
        values["risk_rules"] = self._rules(data.get("risk_rules", []))
        if self.problems:
            raise SpecError(self.problems, "review settings")
        return ReviewSettings(**values)

    def _fraction(self, data: Mapping[str, Any], key: str, defaults: ReviewSettings) -> float:
        value = data.get(key, getattr(defaults, key))
        if not _is_number(value) or not 0 <= value <= 1:
            self.problem(key, "must be a number between 0 and 1")
            return float(getattr(defaults, key))
        return float(value)

    def _whole(self, data: Mapping[str, Any], key: str, defaults: ReviewSettings, *, maximum: int) -> int:
        value = data.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            self.problem(key, f"must be a whole number from 1 to {maximum}")
            return int(getattr(defaults, key))
        return value

    def _rules(self, raw: Any) -> tuple[RiskRule, ...]:
        if not isinstance(raw, list):
            self.problem("risk_rules", "must be a list of rules")
            return ()
        names = self.spec.expression_names | DECISION_NAMES if self.spec is not None else None
        rules: list[RiskRule] = []
        seen: set[str] = set()
        for index, item in enumerate(raw):
            path = f"risk_rules[{index}]"
            if not isinstance(item, Mapping):
                self.problem(path, "must be an object with name, when and level")
                continue
            for key in item:
                if key not in ("name", "when", "level", "description"):
                    self.problem(f"{path}.{key}", "unknown key (allowed: description, level, name, when)")
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                self.problem(f"{path}.name", "a risk rule needs a name")
                name = ""
            elif name in seen:
                self.problem(f"{path}.name", f"another risk rule is already named {name!r}")
            seen.add(name)
            level = item.get("level")
            if level not in RISK_LEVELS:
                self.problem(f"{path}.level", f"must be one of {', '.join(RISK_LEVELS)}")
            description = item.get("description", "")
            if not isinstance(description, str):
                self.problem(f"{path}.description", "must be text")
                description = ""
            when = item.get("when")
            compiled = None
            if not isinstance(when, str) or not when.strip():
                self.problem(f"{path}.when", "must be an expression, e.g. arguments.amount > 10000")
            else:
                try:
                    compiled = compile_expression(when, names=names)
                except ExpressionError as exc:
                    self.problem(f"{path}.when", str(exc))
            if compiled is not None and level in RISK_LEVELS and name:
                rules.append(RiskRule(name.strip(), compiled.source, level, description, compiled))
        return tuple(rules)
