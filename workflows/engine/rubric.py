"""Rubrics: the reward, as weighted criteria an expert can read and a reviewer can audit.

You are in the engine's judging room. A rubric turns a finished trajectory into a score in
[0, 1]: the weighted mean of the criteria that apply, or 0 when any gate fails. Every criterion
reports a human-readable reason ("approved 4,120.00; expected 4,100.00 ± 2% → within
tolerance") so a reward can be explained, not just trusted. The rubric also carries the
per-step cost and the optional shaping bonuses the environment pays at intermediate steps.

Criterion kinds (params): outcome_match {}; field_match {argument}; numeric_tolerance
{argument, absolute | relative}; required_step {tool, before_decision}; forbidden_step
{tool_or_decision}; step_order {before, after}; explanation_mentions {terms | cite_tools,
min_matches}; expression {expression}. ``when`` (an expression) restricts a criterion to the
trajectories where it holds; criteria that compare with the expected outcome are skipped when
the case has none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import ExpressionError, Problem, RubricError
from .expressions import Expression, compile_expression, format_value
from .spec import RUBRIC_CONTEXT_NAMES, WorkflowSpec

if TYPE_CHECKING:
    from .environment import CaseData, Trajectory

__all__ = ["CRITERION_KINDS", "Criterion", "CriterionResult", "Rubric", "Score"]

ANY_DECISION = "decision"  # step_order may name "decision" to mean whichever decision was taken
_PASS = 1.0 - 1e-9
_NUMBER_IN_TEXT = re.compile(r"\d[\d,]*(?:\.\d+)?")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """How one criterion judged one trajectory."""

    name: str
    kind: str
    weight: float
    score: float
    passed: bool
    gate: bool
    applied: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "weight": self.weight,
            "score": self.score,
            "passed": self.passed,
            "gate": self.gate,
            "applied": self.applied,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Score:
    """The rubric's verdict: total in [0, 1], per-criterion breakdown, whether a gate zeroed it."""

    total: float
    breakdown: list[CriterionResult]
    gated: bool

    def criterion(self, name: str) -> CriterionResult:
        for result in self.breakdown:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "gated": self.gated,
            "breakdown": [result.to_dict() for result in self.breakdown],
        }


# --------------------------------------------------------------------------- criteria


@dataclass(frozen=True, slots=True)
class Criterion:
    """One weighted check of a trajectory."""

    name: str
    kind: str
    weight: float = 1.0
    gate: bool = False
    when: str | None = None
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    compiled_when: Expression | None = field(default=None, compare=False, repr=False)
    compiled_expression: Expression | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "weight": self.weight,
            "gate": self.gate,
            "when": self.when,
            "description": self.description,
            "params": dict(self.params),
        }


@dataclass(frozen=True, slots=True)
class _ParamSpec:
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    needs_expected: bool = False


CRITERION_KINDS: dict[str, _ParamSpec] = {
    "outcome_match": _ParamSpec(needs_expected=True),
    "field_match": _ParamSpec(required=("argument",), needs_expected=True),
    "numeric_tolerance": _ParamSpec(
        required=("argument",), optional=("absolute", "relative"), needs_expected=True
    ),
    "required_step": _ParamSpec(required=("tool",), optional=("before_decision",)),
    "forbidden_step": _ParamSpec(required=("tool_or_decision",)),
    "step_order": _ParamSpec(required=("before", "after")),
    "explanation_mentions": _ParamSpec(optional=("terms", "cite_tools", "min_matches")),
    "expression": _ParamSpec(required=("expression",)),
}


class _Judging:
    """Everything criteria read about one trajectory, computed once per ``score`` call."""

    __slots__ = ("_context", "case", "conditions", "decision", "expected", "first", "revealed", "trajectory")

    def __init__(self, trajectory: Trajectory, case: CaseData) -> None:
        self.trajectory = trajectory
        self.case = case
        self.decision = trajectory.decision
        self.expected = case.expected
        first: dict[str, int] = {}
        revealed: dict[str, dict[str, Any]] = {}
        for step in trajectory.steps:
            if step.error is None:
                name = step.action.name
                if name not in first:
                    first[name] = step.index
                if step.result is not None:
                    revealed[name] = step.result
        self.first = first
        self.revealed = revealed
        self._context: dict[str, Any] | None = None
        self.conditions: dict[str, bool] = {}  # `when` verdicts by source: criteria often share one

    @property
    def context(self) -> dict[str, Any]:
        """The expression context for ``when`` and ``expression`` criteria (built on first use)."""
        if self._context is None:
            decision, expected = self.decision, self.expected
            self._context = {
                **self.case.fields,
                **self.revealed,
                "decision": decision.name if decision else None,
                "arguments": dict(decision.arguments) if decision else {},
                "expected_decision": expected.decision if expected else None,
                "expected": dict(expected.arguments) if expected else {},
                "steps": list(self.first),
            }
        return self._context


def _past(decision: str) -> str:
    if decision.endswith("e"):
        return decision + "d"
    if decision.endswith("y"):
        return decision[:-1] + "ied"
    return decision + "ed"


def _step_text(index: int) -> str:
    return f"step {index + 1}"


# Each judge returns (score, reason); a score of None means the criterion does not apply to this
# trajectory (it is then left out of the weighted mean) and the reason says why.
Verdict = tuple[float | None, str]
Judge = Callable[[Criterion, _Judging], Verdict]


def _judge_outcome(criterion: Criterion, judging: _Judging) -> Verdict:
    expected = judging.expected
    assert expected is not None
    decision = judging.decision
    if decision is None:
        return 0.0, f"no decision (step budget exhausted); expected {expected.decision}"
    if decision.name == expected.decision:
        return 1.0, f"decided {decision.name}; expected {expected.decision} → correct"
    return 0.0, f"decided {decision.name}; expected {expected.decision} → wrong outcome"


def _judge_field(criterion: Criterion, judging: _Judging) -> Verdict:
    expected, decision = judging.expected, judging.decision
    assert expected is not None
    argument = criterion.params["argument"]
    if argument not in expected.arguments:
        return None, f"not applicable: the expected {expected.decision} has no {argument}"
    wanted = expected.arguments[argument]
    if decision is None:
        return 0.0, f"no decision; expected {argument} {format_value(wanted)}"
    if decision.name != expected.decision or argument not in decision.arguments:
        return (
            0.0,
            f"decided {decision.name}, expected {expected.decision} {format_value(wanted)}"
            f" → no {argument} to compare",
        )
    got = decision.arguments[argument]
    same = (
        got.lower() == wanted.lower() if isinstance(got, str) and isinstance(wanted, str) else got == wanted
    )
    verdict = "match" if same else "mismatch"
    return (
        1.0 if same else 0.0
    ), f"{argument} {format_value(got)}; expected {format_value(wanted)} → {verdict}"


def _tolerance_text(params: Mapping[str, Any]) -> str:
    parts = []
    if params.get("relative") is not None:
        parts.append(f"{params['relative'] * 100:g}%")
    if params.get("absolute") is not None:
        parts.append(format_value(float(params["absolute"])))
    return " or ".join(parts)


def _judge_tolerance(criterion: Criterion, judging: _Judging) -> Verdict:
    expected, decision = judging.expected, judging.decision
    assert expected is not None
    params = criterion.params
    argument = params["argument"]
    if argument not in expected.arguments:
        return None, f"not applicable: the expected {expected.decision} has no {argument}"
    wanted = float(expected.arguments[argument])
    wanted_text = format_value(wanted)
    if decision is None:
        return 0.0, f"no decision; expected {wanted_text}"
    if decision.name != expected.decision or argument not in decision.arguments:
        return (
            0.0,
            f"decided {decision.name}, expected {expected.decision} {wanted_text} → no {argument} to compare",
        )
    got = float(decision.arguments[argument])
    error = abs(got - wanted)
    allowed = max(
        float(params.get("absolute") or 0.0),
        float(params.get("relative") or 0.0) * abs(wanted),
    )
    within = error <= allowed + 1e-9
    label = _past(decision.name) if argument == "amount" else f"{_past(decision.name)} {argument}"
    verdict = "within tolerance" if within else f"off by {format_value(error)}"
    reason = f"{label} {format_value(got)}; expected {wanted_text} ± {_tolerance_text(params)} → {verdict}"
    return (1.0 if within else 0.0), reason


def _judge_required(criterion: Criterion, judging: _Judging) -> Verdict:
    tool = criterion.params["tool"]
    index = judging.first.get(tool)
    if index is None:
        return 0.0, f"{tool} was never called"
    decision = judging.decision
    if criterion.params.get("before_decision", True):
        if decision is None:
            return 0.0, f"{tool} called at {_step_text(index)}, but no decision was taken"
        return 1.0, f"{tool} called at {_step_text(index)}, before the decision"
    return 1.0, f"{tool} called at {_step_text(index)}"


def _judge_forbidden(criterion: Criterion, judging: _Judging) -> Verdict:
    name = criterion.params["tool_or_decision"]
    index = judging.first.get(name)
    if index is None:
        return 1.0, f"{name} was not used"
    return 0.0, f"{name} used at {_step_text(index)} (forbidden)"


def _judge_order(criterion: Criterion, judging: _Judging) -> Verdict:
    before, after = criterion.params["before"], criterion.params["after"]
    if after == ANY_DECISION:
        decision = judging.decision
        after_index = judging.first.get(decision.name) if decision else None
        after_label = decision.name if decision else ANY_DECISION
    else:
        after_index = judging.first.get(after)
        after_label = after
    if after_index is None:
        return None, f"not applicable: {after_label} never happened, nothing to order"
    before_index = judging.first.get(before)
    if before_index is None:
        return 0.0, f"{after_label} at {_step_text(after_index)} without {before} first"
    if before_index < after_index:
        return (
            1.0,
            f"{before} ({_step_text(before_index)}) before {after_label} ({_step_text(after_index)})"
            " → in order",
        )
    return (
        0.0,
        f"{before} ({_step_text(before_index)}) after {after_label} ({_step_text(after_index)})"
        " → out of order",
    )


def _cites(value: Any, numbers: set[float], text: str) -> bool:
    """Does the (lower-cased) explanation mention this tool fact?

    Numbers match a number written in the text (1,234.5 == 1234.50), zero excepted: "0" is too
    cheap to count as citing a fact. Strings of three characters or more match as a whole word
    (so "active" is not found inside "inactive"), or as a substring when they contain
    separators ("2024-03-01", "collision;glass"). Flags (booleans) and nulls are never facts.
    """
    kind = type(value)
    if kind is float or kind is int:
        return value != 0 and round(value, 2) in numbers
    if kind is str:
        return len(value) >= 3 and _string_cited(value.lower(), text)
    if kind is list or kind is tuple:
        return any(_cites(item, numbers, text) for item in value)
    return False


def _string_cited(needle: str, text: str) -> bool:
    if needle not in text:  # cheap rejection first: most facts are not mentioned
        return False
    return not needle.replace("_", "").isalnum() or _whole_word(needle).search(text) is not None


@lru_cache(maxsize=4096)
def _whole_word(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9_]){re.escape(word)}(?![a-z0-9_])")


def _judge_mentions(criterion: Criterion, judging: _Judging) -> Verdict:
    params = criterion.params
    needed = params["min_matches"]
    decision = judging.decision
    if decision is None or not decision.explanation.strip():
        return 0.0, "no decision explanation to check"
    text = decision.explanation.lower()
    cited = [repr(term) for term in params.get("terms") or () if term.lower() in text]
    cite_tools = params.get("cite_tools") or ()
    if cite_tools:
        numbers = {round(float(token.replace(",", "")), 2) for token in _NUMBER_IN_TEXT.findall(text)}
        revealed = judging.revealed
        for tool in cite_tools:
            result = revealed.get(tool)
            if not result:
                continue
            for key, value in result.items():
                # The common kinds inline (same rules as _cites): this runs for every fact of every episode.
                kind = type(value)
                if kind is float or kind is int:
                    if value != 0 and round(value, 2) in numbers:
                        cited.append(key)
                elif kind is str:
                    if len(value) >= 3 and _string_cited(value.lower(), text):
                        cited.append(key)
                elif (kind is list or kind is tuple) and _cites(value, numbers, text):
                    cited.append(key)
    if not cited:
        sources = ", ".join([*(params.get("terms") or ()), *cite_tools])
        return 0.0, f"cites nothing from {sources}; needs {needed}"
    shown = ", ".join(cited[:6]) + (", …" if len(cited) > 6 else "")
    return min(1.0, len(cited) / needed), f"cites {len(cited)} ({shown}); needs {needed}"


def _judge_expression(criterion: Criterion, judging: _Judging) -> Verdict:
    compiled = criterion.compiled_expression
    assert compiled is not None
    try:
        value = compiled.evaluate(judging.context)
    except ExpressionError as error:
        return 0.0, f"could not evaluate: {error}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        holds = bool(value)
        return (1.0 if holds else 0.0), f"{'holds' if holds else 'does not hold'}: {compiled.source}"
    if not math.isfinite(value):
        return 0.0, f"not a finite number ({value}): {compiled.source}"
    score = min(1.0, max(0.0, float(value)))
    return score, f"scored {score:.2f}: {compiled.source}"


_JUDGES: dict[str, Judge] = {
    "outcome_match": _judge_outcome,
    "field_match": _judge_field,
    "numeric_tolerance": _judge_tolerance,
    "required_step": _judge_required,
    "forbidden_step": _judge_forbidden,
    "step_order": _judge_order,
    "explanation_mentions": _judge_mentions,
    "expression": _judge_expression,
}


# --------------------------------------------------------------------------- the rubric


@dataclass(frozen=True, slots=True)
class Rubric:
    """Weighted criteria, gates, per-step cost and shaping."""

    criteria: tuple[Criterion, ...]
    step_cost: float = 0.0
    shaping: Mapping[str, float] = field(default_factory=dict)
    # (criterion, its judge, whether it needs an expected outcome), resolved once: score() is hot.
    _plan: tuple[tuple[Criterion, Judge, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = tuple(
            (criterion, _JUDGES[criterion.kind], CRITERION_KINDS[criterion.kind].needs_expected)
            for criterion in self.criteria
        )
        object.__setattr__(self, "_plan", plan)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], spec: WorkflowSpec | None = None) -> Rubric:
        return _RubricReader(spec).read(data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_cost": self.step_cost,
            "shaping": dict(self.shaping),
            "criteria": [criterion.to_dict() for criterion in self.criteria],
        }

    def score(self, trajectory: Trajectory, case: CaseData | None = None) -> Score:
        """Judge ``trajectory`` (against ``case``'s expected outcome; default: the trajectory's case)."""
        judging = _Judging(trajectory, case if case is not None else trajectory.case)
        has_expected = judging.expected is not None
        breakdown: list[CriterionResult] = []
        weighted = weights = 0.0
        gated = False
        for criterion, judge, needs_expected in self._plan:
            if needs_expected and not has_expected:
                value, reason = None, "skipped: the case has no expected outcome"
            elif criterion.compiled_when is not None and not _holds(criterion.compiled_when, judging):
                value, reason = None, f"not applicable (when: {criterion.when})"
            else:
                try:
                    value, reason = judge(criterion, judging)
                except (TypeError, ValueError, KeyError, AttributeError) as error:
                    # Malformed data (say an expected amount stored as text) fails the criterion
                    # with a reason; it must not crash the episode that is being scored.
                    value, reason = 0.0, f"could not judge: {type(error).__name__}: {error}"
            if value is None:
                breakdown.append(
                    CriterionResult(
                        criterion.name,
                        criterion.kind,
                        criterion.weight,
                        0.0,
                        False,
                        criterion.gate,
                        False,
                        reason,
                    )
                )
                continue
            passed = value >= _PASS
            if criterion.gate and not passed:
                gated = True
                reason = f"GATE FAILED: {reason}"
            weighted += criterion.weight * value
            weights += criterion.weight
            breakdown.append(
                CriterionResult(
                    criterion.name,
                    criterion.kind,
                    criterion.weight,
                    value,
                    passed,
                    criterion.gate,
                    True,
                    reason,
                )
            )
        total = 0.0 if gated or weights <= 0.0 else weighted / weights
        return Score(total, breakdown, gated)


def _holds(condition: Expression, judging: _Judging) -> bool:
    verdict = judging.conditions.get(condition.source)
    if verdict is None:
        try:
            verdict = bool(condition.evaluate(judging.context))
        except ExpressionError:
            verdict = False  # a condition that cannot be evaluated does not hold
        judging.conditions[condition.source] = verdict
    return verdict


# --------------------------------------------------------------------------- reading the dict


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _RubricReader:
    def __init__(self, spec: WorkflowSpec | None) -> None:
        self.spec = spec
        self.problems: list[Problem] = []
        self.names = (spec.expression_names | RUBRIC_CONTEXT_NAMES) if spec is not None else None

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def read(self, data: Mapping[str, Any]) -> Rubric:
        if not isinstance(data, Mapping):
            raise RubricError([Problem("", f"rubric must be an object, got {type(data).__name__}")])
        for key in data:
            if key not in ("step_cost", "shaping", "criteria"):
                self.problem(str(key), "unknown key (allowed: criteria, shaping, step_cost)")
        step_cost = data.get("step_cost", 0.0)
        if not _is_number(step_cost) or not 0 <= step_cost <= 1:
            self.problem("step_cost", "must be a number between 0 and 1")
            step_cost = 0.0
        shaping = self._shaping(data.get("shaping") or {})
        raw = data.get("criteria")
        if not isinstance(raw, list) or not raw:
            self.problem("criteria", "must be a non-empty list of criteria")
            raw = []
        criteria: list[Criterion] = []
        names: set[str] = set()
        for index, item in enumerate(raw):
            criterion = self._criterion(item, f"criteria[{index}]", names)
            if criterion is not None:
                criteria.append(criterion)
        if criteria and not any(c.weight > 0 for c in criteria) and not self.problems:
            self.problem("criteria", "at least one criterion needs a positive weight")
        if self.problems:
            raise RubricError(self.problems)
        return Rubric(criteria=tuple(criteria), step_cost=float(step_cost), shaping=shaping)

    def _shaping(self, raw: Any) -> dict[str, float]:
        if not isinstance(raw, Mapping):
            self.problem("shaping", "must be an object mapping tool names to bonuses")
            return {}
        out: dict[str, float] = {}
        for tool, bonus in raw.items():
            if self.spec is not None and not self.spec.has_tool(tool):
                self.problem(f"shaping.{tool}", f"unknown tool {tool!r}")
            elif not _is_number(bonus) or abs(bonus) > 1:
                self.problem(f"shaping.{tool}", "must be a number between -1 and 1")
            else:
                out[tool] = float(bonus)
        return out

    def _criterion(self, item: Any, path: str, names: set[str]) -> Criterion | None:
        if not isinstance(item, Mapping):
            self.problem(path, "must be an object")
            return None
        for key in item:
            if key not in ("name", "kind", "weight", "gate", "when", "description", "params"):
                self.problem(f"{path}.{key}", "unknown key")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            self.problem(f"{path}.name", "must be a non-empty string")
            name = None
        elif name in names:
            self.problem(f"{path}.name", f"duplicate criterion name {name!r}")
        else:
            names.add(name)
        kind = item.get("kind")
        if kind not in CRITERION_KINDS:
            self.problem(f"{path}.kind", f"unknown kind {kind!r}; one of {', '.join(CRITERION_KINDS)}")
            kind = None
        weight = item.get("weight", 1.0)
        if not _is_number(weight):
            self.problem(f"{path}.weight", "must be a number")
            weight = 0.0
        elif weight < 0:
            self.problem(f"{path}.weight", f"must not be negative, got {weight}")
        gate = item.get("gate", False)
        if not isinstance(gate, bool):
            self.problem(f"{path}.gate", "must be true or false")
            gate = False
        when = item.get("when")
        compiled_when = None
        if when is not None:
            compiled_when = self._compile(when, f"{path}.when")
        description = item.get("description", "") or ""
        if not isinstance(description, str):
            self.problem(f"{path}.description", "must be a string")
            description = ""
        params = item.get("params", {}) or {}
        if not isinstance(params, Mapping):
            self.problem(f"{path}.params", "must be an object")
            params = {}
        compiled_expression = None
        if kind is not None:
            params, compiled_expression = self._params(kind, dict(params), f"{path}.params")
        if name is None or kind is None:
            return None
        return Criterion(
            name=name,
            kind=kind,
            weight=float(weight),
            gate=gate,
            when=when,
            description=description,
            params=params,
            compiled_when=compiled_when,
            compiled_expression=compiled_expression,
        )

    def _compile(self, source: Any, path: str) -> Expression | None:
        if not isinstance(source, str):
            self.problem(path, "must be an expression string")
            return None
        try:
            return compile_expression(source, names=self.names)
        except ExpressionError as error:
            self.problem(path, f"does not compile: {error}")
            return None

    def _params(
        self, kind: str, params: dict[str, Any], path: str
    ) -> tuple[dict[str, Any], Expression | None]:
        shape = CRITERION_KINDS[kind]
        for key in params:
            if key not in shape.required and key not in shape.optional:
                allowed = ", ".join(shape.required + shape.optional) or "none"
                self.problem(f"{path}.{key}", f"unknown parameter for {kind} (allowed: {allowed})")
        for key in shape.required:
            if key not in params:
                self.problem(f"{path}.{key}", f"missing parameter for {kind}")
        compiled = None
        if kind in ("field_match", "numeric_tolerance") and "argument" in params:
            self._argument(params["argument"], f"{path}.argument", numeric=kind == "numeric_tolerance")
        if kind == "numeric_tolerance":
            given = [key for key in ("absolute", "relative") if params.get(key) is not None]
            if not given:
                self.problem(f"{path}.tolerance", "numeric_tolerance needs absolute or relative (or both)")
            for key in given:
                if not _is_number(params[key]) or params[key] < 0:
                    self.problem(f"{path}.{key}", "must be a non-negative number")
        elif kind == "required_step":
            self._action(params.get("tool"), f"{path}.tool", tools_only=True)
            if not isinstance(params.setdefault("before_decision", True), bool):
                self.problem(f"{path}.before_decision", "must be true or false")
        elif kind == "forbidden_step":
            self._action(params.get("tool_or_decision"), f"{path}.tool_or_decision")
        elif kind == "step_order":
            before, after = params.get("before"), params.get("after")
            self._action(before, f"{path}.before")
            self._action(after, f"{path}.after", allow_any_decision=True)
            if before is not None and before == after:
                self.problem(f"{path}.after", "must differ from before")
        elif kind == "explanation_mentions":
            terms, tools = params.get("terms"), params.get("cite_tools")
            if not terms and not tools:
                self.problem(f"{path}.terms", "explanation_mentions needs terms or cite_tools")
            if terms is not None and (
                not isinstance(terms, list) or not all(isinstance(t, str) and t.strip() for t in terms)
            ):
                self.problem(f"{path}.terms", "must be a list of non-empty strings")
            if tools is not None:
                if not isinstance(tools, list):
                    self.problem(f"{path}.cite_tools", "must be a list of tool names")
                else:
                    for position, tool in enumerate(tools):
                        self._action(tool, f"{path}.cite_tools[{position}]", tools_only=True)
            minimum = params.setdefault("min_matches", 1)
            if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
                self.problem(f"{path}.min_matches", "must be a positive integer")
        elif kind == "expression" and "expression" in params:
            compiled = self._compile(params["expression"], f"{path}.expression")
        return params, compiled

    def _argument(self, argument: Any, path: str, *, numeric: bool) -> None:
        if not isinstance(argument, str) or not argument:
            self.problem(path, "must name a decision argument")
            return
        if self.spec is None:
            return
        matches = [
            spec for decision in self.spec.decisions for spec in decision.arguments if spec.name == argument
        ]
        if not matches:
            self.problem(path, f"no decision has an argument {argument!r}")
        elif numeric and not any(spec.type in ("number", "integer") for spec in matches):
            self.problem(path, f"argument {argument!r} is not numeric")

    def _action(
        self, name: Any, path: str, *, tools_only: bool = False, allow_any_decision: bool = False
    ) -> None:
        if not isinstance(name, str) or not name:
            if name is not None:
                self.problem(path, "must be a tool name" if tools_only else "must be a tool or decision name")
            return
        if self.spec is None or (allow_any_decision and name == ANY_DECISION):
            return
        if self.spec.has_tool(name):
            return
        if tools_only:
            self.problem(path, f"unknown tool {name!r}")
        elif not self.spec.has_decision(name):
            self.problem(path, f"unknown tool or decision {name!r}")
