"""The workflow as an RL environment: state, actions, rewards, one case per episode.

You are in the engine's arena. The state is the case's visible fields plus what tools have
revealed so far (facts behind a tool are absent until it is called); actions are tool calls
and terminal decisions; the reward is the rubric's verdict on the trajectory, minus a small
cost per step, plus optional shaping. ``step`` never raises on a bad action: unknown names,
bad arguments, unmet ``requires`` or acting after the end are recorded and penalised with a
reason, so a learning policy can be punished rather than crash the run. There is no randomness
in here: the same case and the same actions give the same trajectory and rewards.

Hot-path notes: the case view and each revealed dict are built once and shared by the
observations that follow (never mutated afterwards), so a step costs a few small allocations,
never a deep copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import CaseValidationError, EngineError, ExpressionError, Problem, SpecError
from .spec import ToolSpec, WorkflowSpec

if TYPE_CHECKING:
    from .rubric import Rubric, Score

__all__ = [
    "Action",
    "CaseData",
    "Environment",
    "Observation",
    "Outcome",
    "PackTool",
    "StepRecord",
    "ToolCall",
    "Trajectory",
]

TOOL = "tool"
DECISION = "decision"
_EMPTY: Mapping[str, Any] = MappingProxyType({})


# --------------------------------------------------------------------------- cases and outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision with its arguments: the expected outcome of a case, or what a policy decided."""

    decision: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "arguments": dict(self.arguments)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(decision=data["decision"], arguments=dict(data.get("arguments") or {}))


@dataclass(frozen=True, slots=True)
class CaseData:
    """One task instance: visible fields and, for labelled cases, the expected outcome."""

    id: str
    fields: dict[str, Any]
    expected: Outcome | None = None
    difficulty: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fields": dict(self.fields),
            "expected": self.expected.to_dict() if self.expected else None,
            "difficulty": self.difficulty,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseData:
        expected = data.get("expected")
        return cls(
            id=str(data["id"]),
            fields=dict(data["fields"]),
            expected=Outcome.from_dict(expected) if expected else None,
            difficulty=int(data.get("difficulty", 0)),
        )


# --------------------------------------------------------------------------- actions and observations


@dataclass(frozen=True, slots=True)
class Action:
    """A tool call or a terminal decision, with what the policy said about it."""

    kind: str  # "tool" or "decision"
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    explanation: str = ""
    confidence: float = 1.0
    probabilities: dict[str, float] = field(default_factory=dict)

    @classmethod
    def tool(
        cls,
        name: str,
        arguments: dict[str, Any] | None = None,
        explanation: str = "",
        *,
        confidence: float = 1.0,
        probabilities: dict[str, float] | None = None,
    ) -> Action:
        return cls(TOOL, name, arguments or {}, explanation, confidence, probabilities or {})

    @classmethod
    def decide(
        cls,
        name: str,
        arguments: dict[str, Any] | None = None,
        explanation: str = "",
        *,
        confidence: float = 1.0,
        probabilities: dict[str, float] | None = None,
    ) -> Action:
        return cls(DECISION, name, arguments or {}, explanation, confidence, probabilities or {})

    @property
    def is_decision(self) -> bool:
        return self.kind == DECISION

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "arguments": dict(self.arguments),
            "explanation": self.explanation,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities),
        }


@dataclass(frozen=True, slots=True)
class Observation:
    """What the agent sees before acting. ``revealed[tool]`` is that tool's result dict."""

    case: Mapping[str, Any]
    revealed: Mapping[str, dict[str, Any]]
    step_index: int
    steps_left: int
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": dict(self.case),
            "revealed": {name: dict(result) for name, result in self.revealed.items()},
            "step_index": self.step_index,
            "steps_left": self.steps_left,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One recorded step: the action, what the agent saw before it, the result or the error."""

    index: int
    action: Action
    observation_before: Observation
    result: dict[str, Any] | None
    error: str | None
    reward: float

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "action": self.action.to_dict(),
            "observation_before": self.observation_before.to_dict(),
            "result": dict(self.result) if self.result is not None else None,
            "error": self.error,
            "reward": self.reward,
        }


@dataclass(slots=True)
class Trajectory:
    """An episode as it unfolds; the environment appends to it, scorers read it."""

    case: CaseData
    steps: list[StepRecord] = field(default_factory=list)
    decision: Action | None = None
    truncated: bool = False

    def tools_called(self) -> list[str]:
        """Names of successful tool calls, in call order (repeats kept)."""
        return [step.action.name for step in self.steps if step.error is None and step.action.kind == TOOL]

    def first_index(self, name: str) -> int | None:
        """Index of the first successful step that called tool ``name`` or took decision ``name``."""
        for step in self.steps:
            if step.error is None and step.action.name == name:
                return step.index
        return None

    def revealed(self) -> dict[str, dict[str, Any]]:
        """Every tool result revealed during the episode, by tool name."""
        return {
            step.action.name: step.result
            for step in self.steps
            if step.error is None and step.action.kind == TOOL and step.result is not None
        }

    @property
    def total_reward(self) -> float:
        return sum(step.reward for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.to_dict(),
            "steps": [step.to_dict() for step in self.steps],
            "decision": self.decision.to_dict() if self.decision else None,
            "truncated": self.truncated,
        }


# --------------------------------------------------------------------------- pack tools


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What a pack tool receives: the case, what is revealed so far, the reference tables."""

    case: Mapping[str, Any]
    revealed: Mapping[str, dict[str, Any]]
    tables: Mapping[str, Sequence[Mapping[str, Any]]]
    arguments: Mapping[str, Any]


PackTool = Callable[[ToolCall], dict[str, Any]]


# --------------------------------------------------------------------------- the environment


class Environment:
    """One workflow, its reference tables and (optionally) a rubric; episodes run one at a time."""

    def __init__(
        self,
        spec: WorkflowSpec,
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        *,
        rubric: Rubric | None = None,
        pack_tools: Mapping[str, PackTool] | None = None,
        invalid_action_penalty: float = 0.05,
    ) -> None:
        pack_tools = pack_tools or {}
        problems: list[Problem] = []
        self._indexes: dict[str, dict[Any, Mapping[str, Any]]] = {}
        for position, tool in enumerate(spec.tools):
            if tool.kind == "lookup":
                rows = tables.get(tool.table or "")
                if rows is None:
                    problems.append(Problem(f"tools[{position}].table", f"no reference table {tool.table!r}"))
                    continue
                index: dict[Any, Mapping[str, Any]] = {}
                for row in rows:
                    index.setdefault(row.get(tool.match_column or ""), row)  # first row wins
                self._indexes[tool.name] = index
            elif tool.kind == "pack" and tool.pack_tool not in pack_tools:
                problems.append(Problem(f"tools[{position}].pack_tool", f"no pack tool {tool.pack_tool!r}"))
        if problems:
            raise SpecError(problems, "environment")
        if invalid_action_penalty < 0:
            raise ValueError("invalid_action_penalty must be >= 0")
        self.spec = spec
        self.tables = tables
        self.rubric = rubric
        self.invalid_action_penalty = float(invalid_action_penalty)
        self._pack_tools = dict(pack_tools)
        self._tools: dict[str, ToolSpec] = {tool.name: tool for tool in spec.tools}
        self._step_cost = rubric.step_cost if rubric is not None else 0.0
        self._shaping: Mapping[str, float] = rubric.shaping if rubric is not None else {}
        self._max_steps = spec.max_steps
        self._trajectory: Trajectory | None = None
        self._fields: dict[str, Any] = {}
        self._case_view: Mapping[str, Any] = _EMPTY
        self._revealed: dict[str, dict[str, Any]] = {}
        self._revealed_view: Mapping[str, dict[str, Any]] = _EMPTY
        self._observation: Observation | None = None
        self._done = True
        self._score: Score | None = None

    # -- public API

    @property
    def trajectory(self) -> Trajectory:
        if self._trajectory is None:
            raise EngineError("no episode yet: call reset(case) first")
        return self._trajectory

    @property
    def done(self) -> bool:
        return self._done

    @property
    def score(self) -> Score | None:
        """The final score once the episode is over (None before, or without a rubric)."""
        return self._score

    @property
    def observation(self) -> Observation:
        if self._observation is None:
            raise EngineError("no episode yet: call reset(case) first")
        return self._observation

    def reset(self, case: CaseData) -> Observation:
        """Start an episode on ``case``; raises CaseValidationError if its fields are invalid."""
        fields = self.spec.validate_case(case.fields)
        case = CaseData(case.id, fields, case.expected, case.difficulty)
        self._fields = fields
        self._case_view = MappingProxyType(fields)
        self._revealed = {}
        self._revealed_view = _EMPTY
        self._trajectory = Trajectory(case)
        self._done = False
        self._score = None
        self._observation = Observation(self._case_view, _EMPTY, 0, self._max_steps, None)
        return self._observation

    def step(self, action: Action) -> tuple[Observation, float, bool, dict[str, Any]]:
        """Apply ``action``; returns (observation, reward, done, info). Never raises on bad actions."""
        if self._trajectory is None:
            raise EngineError("no episode yet: call reset(case) first")
        if self._done:
            return self._record(action, error="the episode is over", invalid=True, over=True)
        if not isinstance(action, Action):
            return self._record(Action(TOOL, repr(action)[:60]), error="not an Action", invalid=True)
        if not isinstance(action.name, str):
            return self._record(action, error="the action name must be a string", invalid=True)
        if action.kind == TOOL:
            tool = self._tools.get(action.name)
            if tool is None:
                return self._record(action, error=f"unknown tool {action.name!r}", invalid=True)
            missing = [name for name in tool.requires if name not in self._revealed]
            if missing:
                return self._record(
                    action, error=f"{tool.name} requires {', '.join(missing)} first", invalid=True
                )
            result, error = self._run_tool(tool, action.arguments)
            if result is None:
                return self._record(action, error=error, invalid=True)
            bonus = 0.0
            if tool.name not in self._revealed:
                bonus = self._shaping.get(tool.name, 0.0)
                # A fresh dict per reveal: earlier observations keep pointing at the old one.
                self._revealed = {**self._revealed, tool.name: result}
                self._revealed_view = MappingProxyType(self._revealed)
            return self._record(action, result=result, bonus=bonus)
        if action.kind == DECISION:
            try:
                arguments = self.spec.validate_decision(action.name, action.arguments)
            except CaseValidationError as error:
                reasons = "; ".join(str(problem) for problem in error.problems)
                return self._record(action, error=f"invalid decision: {reasons}", invalid=True)
            explanation = (
                action.explanation if isinstance(action.explanation, str) else str(action.explanation or "")
            )
            decided = Action(
                DECISION, action.name, arguments, explanation, action.confidence, action.probabilities
            )
            self._trajectory.decision = decided
            return self._record(decided, decided=True)
        return self._record(
            action, error=f"unknown action kind {action.kind!r} (tool or decision)", invalid=True
        )

    # -- internals

    def _record(
        self,
        action: Action,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        bonus: float = 0.0,
        invalid: bool = False,
        decided: bool = False,
        over: bool = False,
    ) -> tuple[Observation, float, bool, dict[str, Any]]:
        trajectory = self._trajectory
        before = self._observation
        assert trajectory is not None and before is not None
        index = len(trajectory.steps)
        reward = bonus - self._step_cost - (self.invalid_action_penalty if invalid else 0.0)
        info: dict[str, Any] = {"error": error}
        finishing = decided
        if not over and not decided and index + 1 >= self._max_steps:
            # Budget exhausted without a decision: the episode ends, scored with no decision.
            trajectory.truncated = True
            finishing = True
        record = StepRecord(index, action, before, result, error, reward)
        trajectory.steps.append(record)
        if finishing:
            self._done = True
            if self.rubric is not None:
                self._score = self.rubric.score(trajectory, trajectory.case)
                reward += self._score.total
                trajectory.steps[index] = StepRecord(index, action, before, result, error, reward)
            info["score"] = self._score
            info["truncated"] = trajectory.truncated
        observation = Observation(
            self._case_view,
            self._revealed_view,
            index + 1,
            max(self._max_steps - index - 1, 0),
            error,
        )
        self._observation = observation
        return observation, reward, self._done, info

    def _run_tool(
        self, tool: ToolSpec, arguments: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, str | None]:
        kind = tool.kind
        if kind == "lookup":
            row = self._indexes[tool.name].get(self._fields.get(tool.key_field or ""))
            if row is None:
                return {"found": False, **dict.fromkeys(tool.returns)}, None
            return {"found": True, **{column: row.get(column) for column in tool.returns}}, None
        if kind == "expression":
            assert tool.compiled is not None
            context = {**self._fields, **self._revealed}
            try:
                return {tool.result_name or "value": tool.compiled.evaluate(context)}, None
            except ExpressionError as error:
                return None, f"{tool.name} failed: {error}"
        call = ToolCall(self._case_view, self._revealed_view, self.tables, arguments or _EMPTY)
        try:
            result = self._pack_tools[tool.pack_tool or tool.name](call)
        except Exception as error:  # a pack tool is user-level code: report, never crash the episode
            return None, f"{tool.name} failed: {type(error).__name__}: {str(error)[:200]}"
        if not isinstance(result, dict):
            return None, f"{tool.name} failed: returned {type(result).__name__}, not a dict"
        return result, None
