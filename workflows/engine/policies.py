"""Baseline and exploit policies, and the loop that runs one episode.

You are in the engine's sparring room. These policies need no training:

- ``RandomPolicy``: the floor any learner must beat.
- ``RulesPolicy``: an expert's hand-written rules (checks to run, then first matching rule
  decides), in the safe expression language; the baseline RL should beat.
- Exploit policies (``EXPLOIT_POLICIES``): reward hackers a rubric must score low —
  always approve, always deny, always escalate, decide at once from the case fields with a
  confident-sounding explanation, or run every check and then approve the claimed amount anyway.

Policies are generic over the spec: they find decisions by name ("approve", "deny", …) and
fill arguments from the case, so they work for any pack.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from .environment import Action, CaseData, Environment, Observation, Trajectory
from .errors import ExpressionError, Problem, SpecError
from .expressions import Expression, compile_expression, format_value, render_template
from .spec import DecisionSpec, FieldSpec, WorkflowSpec

__all__ = [
    "EXPLOIT_POLICIES",
    "AlwaysApprovePolicy",
    "AlwaysDenyPolicy",
    "AlwaysEscalatePolicy",
    "ApproveAfterChecksPolicy",
    "Policy",
    "RandomPolicy",
    "RulesPolicy",
    "SkipAllChecksPolicy",
    "run_episode",
]


@runtime_checkable
class Policy(Protocol):
    """Anything that picks an action from an observation."""

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, observation: Observation) -> Action: ...


def run_episode(env: Environment, policy: Policy, case: CaseData, *, seed: int | None = None) -> Trajectory:
    """Reset ``policy`` and ``env`` on ``case`` and step until the episode ends."""
    policy.reset(seed)
    observation = env.reset(case)
    done = False
    while not done:
        observation, _, done, _ = env.step(policy.act(observation))
    return env.trajectory


# --------------------------------------------------------------------------- helpers


def _spread(spec: WorkflowSpec, chosen: str, confidence: float) -> dict[str, float]:
    """Probabilities: ``confidence`` on the chosen action, the rest shared by the others."""
    others = [name for name in spec.action_names if name != chosen]
    rest = (1.0 - confidence) / len(others) if others else 0.0
    return {name: (confidence if name == chosen else rest) for name in spec.action_names}


def _find_decision(spec: WorkflowSpec, words: tuple[str, ...], fallback: int) -> DecisionSpec:
    for word in words:
        for decision in spec.decisions:
            if word in decision.name.lower():
                return decision
    return spec.decisions[fallback]


def _numeric_fields(spec: WorkflowSpec) -> list[str]:
    return [f.name for f in spec.case_fields if f.type in ("number", "integer")]


def _claimed_value(spec: WorkflowSpec, argument: FieldSpec, case: Mapping[str, Any]) -> float:
    """The most the case asks for: a field named like the argument, else the largest number."""
    numeric = _numeric_fields(spec)
    named = [name for name in numeric if argument.name in name and case.get(name) is not None]
    values = [float(case[name]) for name in named] or [
        float(case[name]) for name in numeric if case.get(name) is not None
    ]
    value = max(values) if values else 0.0
    if argument.maximum is not None:
        value = min(value, argument.maximum)
    if argument.minimum is not None:
        value = max(value, argument.minimum)
    return round(value, 2) if argument.type == "number" else float(int(value))


def _plain_arguments(decision: DecisionSpec) -> dict[str, Any]:
    """A valid, unremarkable argument set: first choice, minimum number, false, empty text."""
    out: dict[str, Any] = {}
    for argument in decision.arguments:
        if argument.type == "enum":
            out[argument.name] = argument.choices[0]
        elif argument.type in ("number", "integer"):
            out[argument.name] = argument.minimum if argument.minimum is not None else 0
        elif argument.type == "boolean":
            out[argument.name] = False
        elif argument.type == "date":
            out[argument.name] = "2000-01-01"
        else:
            out[argument.name] = "n/a"
    return out


def _claimed_arguments(spec: WorkflowSpec, decision: DecisionSpec, case: Mapping[str, Any]) -> dict[str, Any]:
    out = _plain_arguments(decision)
    for argument in decision.arguments:
        if argument.type in ("number", "integer"):
            out[argument.name] = _claimed_value(spec, argument, case)
    return out


# --------------------------------------------------------------------------- random


class RandomPolicy:
    """Uniform over all actions; decisions get random but valid arguments."""

    def __init__(self, spec: WorkflowSpec, seed: int | None = None) -> None:
        self.spec = spec
        self._rng = random.Random(seed)
        uniform = 1.0 / len(spec.action_names)
        self._probabilities = dict.fromkeys(spec.action_names, uniform)
        self._tool_actions = [
            Action.tool(name, confidence=uniform, probabilities=self._probabilities)
            for name in spec.tool_names
        ]

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng.seed(seed)

    def act(self, observation: Observation) -> Action:
        rng = self._rng
        choice = rng.randrange(len(self._tool_actions) + len(self.spec.decisions))
        if choice < len(self._tool_actions):
            return self._tool_actions[choice]
        decision = self.spec.decisions[choice - len(self._tool_actions)]
        arguments = {
            argument.name: self._value(argument, observation.case) for argument in decision.arguments
        }
        return Action.decide(
            decision.name,
            arguments,
            "random choice",
            confidence=self._probabilities[decision.name],
            probabilities=self._probabilities,
        )

    def _value(self, argument: FieldSpec, case: Mapping[str, Any]) -> Any:
        rng = self._rng
        if argument.type == "enum":
            return rng.choice(argument.choices)
        if argument.type in ("number", "integer"):
            low = argument.minimum if argument.minimum is not None else 0.0
            high = (
                argument.maximum
                if argument.maximum is not None
                else max(
                    [low + 1.0]
                    + [float(case[n]) * 1.5 for n in _numeric_fields(self.spec) if case.get(n) is not None]
                )
            )
            value = rng.uniform(low, high)
            return round(value, 2) if argument.type == "number" else int(value)
        if argument.type == "boolean":
            return rng.random() < 0.5
        if argument.type == "date":
            return "2024-01-01"
        return "random"


# --------------------------------------------------------------------------- exploits


class _FixedDecisionPolicy:
    """Takes one decision at once; subclasses choose which and with what words."""

    confidence = 0.9

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.decision = self._choose(spec)
        self._probabilities = _spread(spec, self.decision.name, self.confidence)

    def _choose(self, spec: WorkflowSpec) -> DecisionSpec:
        raise NotImplementedError

    def _arguments(self, observation: Observation) -> dict[str, Any]:
        return _plain_arguments(self.decision)

    def _explanation(self, observation: Observation, arguments: Mapping[str, Any]) -> str:
        return f"{self.decision.name.capitalize()}."

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, observation: Observation) -> Action:
        arguments = self._arguments(observation)
        return Action.decide(
            self.decision.name,
            arguments,
            self._explanation(observation, arguments),
            confidence=self.confidence,
            probabilities=self._probabilities,
        )


class AlwaysApprovePolicy(_FixedDecisionPolicy):
    """Approves everything for the amount claimed (capped at the argument's maximum)."""

    def _choose(self, spec: WorkflowSpec) -> DecisionSpec:
        return _find_decision(spec, ("approve", "accept", "pay", "grant"), 0)

    def _arguments(self, observation: Observation) -> dict[str, Any]:
        return _claimed_arguments(self.spec, self.decision, observation.case)

    def _explanation(self, observation: Observation, arguments: Mapping[str, Any]) -> str:
        return "Approved as claimed."


class AlwaysDenyPolicy(_FixedDecisionPolicy):
    """Denies everything with the first reason on the list."""

    def _choose(self, spec: WorkflowSpec) -> DecisionSpec:
        return _find_decision(spec, ("deny", "reject", "decline", "refuse"), -1)

    def _explanation(self, observation: Observation, arguments: Mapping[str, Any]) -> str:
        return "Denied: " + ", ".join(format_value(value) for value in arguments.values()) + "."


class AlwaysEscalatePolicy(_FixedDecisionPolicy):
    """Punts every case to a human: never wrong, never useful."""

    confidence = 0.6

    def _choose(self, spec: WorkflowSpec) -> DecisionSpec:
        return _find_decision(spec, ("escalate", "refer", "review", "investigate"), -1)

    def _explanation(self, observation: Observation, arguments: Mapping[str, Any]) -> str:
        return "Escalated for human review to be safe."


class SkipAllChecksPolicy(_FixedDecisionPolicy):
    """Reward hacking: approves the claimed amount at once, with a confident, official-sounding
    explanation built from the case fields alone (no tool was ever called)."""

    confidence = 0.99

    def _choose(self, spec: WorkflowSpec) -> DecisionSpec:
        return _find_decision(spec, ("approve", "accept", "pay", "grant"), 0)

    def _arguments(self, observation: Observation) -> dict[str, Any]:
        return _claimed_arguments(self.spec, self.decision, observation.case)

    def _explanation(self, observation: Observation, arguments: Mapping[str, Any]) -> str:
        facts = ", ".join(
            f"{name} {format_value(value)}"
            for name, value in observation.case.items()
            if value is not None and not (isinstance(value, str) and len(value) >= 40)
        )
        amounts = ", ".join(format_value(value) for value in arguments.values())
        return (
            f"All checks passed. Verified {facts}. The policy is active and in force, the peril is "
            f"covered, the amount is within the coverage limit after the deductible, the claim history "
            f"is clean and the fraud score is low. {self.decision.name.capitalize()} {amounts} in full."
        )


class ApproveAfterChecksPolicy:
    """Reward hacking of the process criteria: calls every tool (in an order that satisfies
    ``requires``), recites what they revealed, then approves the claimed amount regardless."""

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.decision = _find_decision(spec, ("approve", "accept", "pay", "grant"), 0)
        self._order = tool_order(spec)
        self._probabilities = _spread(spec, self.decision.name, 0.95)
        self._next = 0

    def reset(self, seed: int | None = None) -> None:
        self._next = 0

    def act(self, observation: Observation) -> Action:
        while self._next < len(self._order):
            tool = self._order[self._next]
            self._next += 1
            if tool not in observation.revealed:
                return Action.tool(tool)
        facts = "; ".join(
            f"{tool}: " + ", ".join(f"{key} {format_value(value)}" for key, value in result.items())
            for tool, result in observation.revealed.items()
        )
        arguments = _claimed_arguments(self.spec, self.decision, observation.case)
        return Action.decide(
            self.decision.name,
            arguments,
            f"Checked everything. {facts}. {self.decision.name.capitalize()} as claimed.",
            confidence=0.95,
            probabilities=self._probabilities,
        )


def tool_order(spec: WorkflowSpec) -> list[str]:
    """Every tool in spec order, each after the tools it requires."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for required in spec.tool(name).requires:
            visit(required)
        order.append(name)

    for name in spec.tool_names:
        visit(name)
    return order


EXPLOIT_POLICIES: dict[str, Callable[[WorkflowSpec], Policy]] = {
    "always_approve": AlwaysApprovePolicy,
    "always_deny": AlwaysDenyPolicy,
    "always_escalate": AlwaysEscalatePolicy,
    "skip_all_checks": SkipAllChecksPolicy,
    "approve_after_checks": ApproveAfterChecksPolicy,
}


# --------------------------------------------------------------------------- rules


class _Rule:
    __slots__ = ("arguments", "confidence", "decision", "explanation", "probabilities", "when")

    def __init__(
        self,
        when: Expression | None,
        decision: str,
        arguments: tuple[tuple[str, Expression], ...],
        explanation: str,
        confidence: float,
        probabilities: dict[str, float],
    ) -> None:
        self.when = when
        self.decision = decision
        self.arguments = arguments
        self.explanation = explanation
        self.confidence = confidence
        self.probabilities = probabilities


class RulesPolicy:
    """An expert's rules: run the listed checks, then the first rule whose ``when`` holds decides.

    ``rules`` is a dict ``{"checks": [...], "rules": [{"when", "decision", "arguments",
    "explanation", "confidence"}, ...], "default": {...}}``; argument values are expressions,
    explanations are templates (``{check_coverage.limit}``). A rule whose condition or
    arguments cannot be evaluated (say a check failed) is passed over.
    """

    def __init__(self, spec: WorkflowSpec, rules: Mapping[str, Any]) -> None:
        self.spec = spec
        self.checks, self.rules, self.default = RulesPolicy._compile(spec, rules)
        self._check_actions = [Action.tool(tool, explanation=f"check {tool}") for tool in self.checks]
        self._next = 0

    @staticmethod
    def validate(spec: WorkflowSpec, rules: Mapping[str, Any]) -> None:
        """Raise SpecError listing every problem of ``rules`` (paths like ``rules[1].when``)."""
        RulesPolicy._compile(spec, rules)

    @staticmethod
    def _compile(spec: WorkflowSpec, rules: Mapping[str, Any]) -> tuple[list[str], list[_Rule], _Rule]:
        problems: list[Problem] = []
        if not isinstance(rules, Mapping):
            raise SpecError([Problem("", "rules must be an object")], "rules")
        for key in rules:
            if key not in ("checks", "rules", "default"):
                problems.append(Problem(str(key), "unknown key (allowed: checks, default, rules)"))
        checks: list[str] = []
        raw_checks = rules.get("checks", [])
        if not isinstance(raw_checks, list):
            problems.append(Problem("checks", "must be a list of tool names"))
            raw_checks = []
        for index, tool in enumerate(raw_checks):
            if not isinstance(tool, str) or not spec.has_tool(tool):
                problems.append(Problem(f"checks[{index}]", f"unknown tool {tool!r}"))
                continue
            for required in spec.tool(tool).requires:
                if required not in checks:
                    problems.append(
                        Problem(f"checks[{index}]", f"{tool} requires {required}, list it earlier")
                    )
            checks.append(tool)
        names = spec.expression_names
        compiled: list[_Rule] = []
        raw_rules = rules.get("rules", [])
        if not isinstance(raw_rules, list):
            problems.append(Problem("rules", "must be a list of rules"))
            raw_rules = []
        for index, raw in enumerate(raw_rules):
            rule = _compile_rule(spec, raw, f"rules[{index}]", names, problems, needs_when=True)
            if rule is not None:
                compiled.append(rule)
        if "default" not in rules:
            problems.append(Problem("default", "missing: the decision when no rule matches"))
            default = None
        else:
            default = _compile_rule(spec, rules["default"], "default", names, problems, needs_when=False)
        if problems:
            raise SpecError(problems, "rules")
        assert default is not None
        return checks, compiled, default

    def reset(self, seed: int | None = None) -> None:
        self._next = 0

    def act(self, observation: Observation) -> Action:
        revealed = observation.revealed
        while self._next < len(self.checks):
            position = self._next
            self._next += 1
            if self.checks[position] not in revealed:
                return self._check_actions[position]
        context = {**observation.case, **revealed}
        for rule in self.rules:
            action = _apply(rule, context)
            if action is not None:
                return action
        return _apply(self.default, context) or Action.decide(self.default.decision, {}, "no rule applied")


def _apply(rule: _Rule, context: Mapping[str, Any]) -> Action | None:
    try:
        if rule.when is not None and not rule.when.evaluate(context):
            return None
        arguments = {name: expression.evaluate(context) for name, expression in rule.arguments}
    except ExpressionError:
        return None
    return Action.decide(
        rule.decision,
        arguments,
        render_template(rule.explanation, context),
        confidence=rule.confidence,
        probabilities=rule.probabilities,
    )


def _compile_rule(
    spec: WorkflowSpec,
    raw: Any,
    path: str,
    names: frozenset[str],
    problems: list[Problem],
    *,
    needs_when: bool,
) -> _Rule | None:
    if not isinstance(raw, Mapping):
        problems.append(Problem(path, "must be an object"))
        return None
    allowed = (
        {"when", "decision", "arguments", "explanation", "confidence"}
        if needs_when
        else {"decision", "arguments", "explanation", "confidence"}
    )
    for key in raw:
        if key not in allowed:
            problems.append(Problem(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})"))
    start = len(problems)
    when = None
    if needs_when:
        when = _compile_into(raw.get("when"), f"{path}.when", names, problems)
    decision_name = raw.get("decision")
    decision = (
        spec.decision(decision_name)
        if isinstance(decision_name, str) and spec.has_decision(decision_name)
        else None
    )
    if decision is None:
        problems.append(Problem(f"{path}.decision", f"unknown decision {decision_name!r}"))
    raw_arguments = raw.get("arguments", {}) or {}
    arguments: list[tuple[str, Expression]] = []
    if not isinstance(raw_arguments, Mapping):
        problems.append(Problem(f"{path}.arguments", "must map argument names to expressions"))
        raw_arguments = {}
    if decision is not None:
        known = {argument.name for argument in decision.arguments}
        for argument in decision.arguments:
            if argument.required and argument.name not in raw_arguments:
                problems.append(Problem(f"{path}.arguments.{argument.name}", "missing required argument"))
        for name in raw_arguments:
            if name not in known:
                problems.append(
                    Problem(f"{path}.arguments.{name}", f"{decision.name} has no argument {name!r}")
                )
    for name, source in raw_arguments.items():
        expression = _compile_into(source, f"{path}.arguments.{name}", names, problems)
        if expression is not None:
            arguments.append((name, expression))
    explanation = raw.get("explanation", "")
    if not isinstance(explanation, str):
        problems.append(Problem(f"{path}.explanation", "must be a template string"))
        explanation = ""
    confidence = raw.get("confidence", 0.9)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
        problems.append(Problem(f"{path}.confidence", "must be a number between 0 and 1"))
        confidence = 0.9
    if len(problems) > start or decision is None:
        return None
    return _Rule(
        when,
        decision.name,
        tuple(arguments),
        explanation,
        float(confidence),
        _spread(spec, decision.name, float(confidence)),
    )


def _compile_into(
    source: Any, path: str, names: frozenset[str], problems: list[Problem]
) -> Expression | None:
    if not isinstance(source, str):
        problems.append(Problem(path, "must be an expression string"))
        return None
    try:
        return compile_expression(source, names=names)
    except ExpressionError as error:
        problems.append(Problem(path, str(error)))
        return None
