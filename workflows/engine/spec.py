"""Workflow specs: what a case looks like, which tools an agent may call, which decisions it may take.

You are in the engine's blueprint room. A :class:`WorkflowSpec` is built from the plain dict an
expert edits in the browser (see ``docs/engine-api.md``); ``from_dict`` reports every problem at
once with its path, ``to_dict`` gives the normalised dict back. The same field schema checks
case fields (``validate_case``) and decision arguments (``validate_decision``), coercing
form-style strings ("12.5", "true", "2024-03-01") into typed values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .errors import CaseValidationError, ExpressionError, Problem, SpecError
from .expressions import FUNCTION_NAMES, Expression, compile_expression

__all__ = [
    "FIELD_TYPES",
    "RESERVED_NAMES",
    "TOOL_KINDS",
    "DecisionSpec",
    "FieldSpec",
    "ToolSpec",
    "WorkflowSpec",
]

FIELD_TYPES = ("string", "text", "integer", "number", "boolean", "date", "enum")
TOOL_KINDS = ("lookup", "expression", "pack")
# Names the rubric puts into its expression context; case fields and tools may not shadow them.
RUBRIC_CONTEXT_NAMES = frozenset({"decision", "arguments", "expected_decision", "expected", "steps"})
RESERVED_NAMES = RUBRIC_CONTEXT_NAMES | FUNCTION_NAMES | {"True", "False", "None", "found"}

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_SPEC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE_STRINGS = frozenset({"true", "1", "yes"})
_FALSE_STRINGS = frozenset({"false", "0", "no"})
_MAX_STEPS_LIMIT = 1_000


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A typed case field or decision argument."""

    name: str
    type: str
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.type == "enum":
            out["choices"] = list(self.choices)
        if self.max_length is not None:
            out["max_length"] = self.max_length
        out["description"] = self.description
        return out

    def coerce(self, value: Any) -> tuple[Any, str | None]:
        """Return ``(typed value, None)`` or ``(None, message)``."""
        kind = self.type
        value_type = type(value)
        # Fast paths first: values that already have the right type (the common case on the
        # environment's hot path) skip the general conversions below.
        if kind == "string" or kind == "text":
            if value_type is not str:
                return None, f"must be a string, got {_type_name(value)}"
            if self.max_length is not None and len(value) > self.max_length:
                return None, f"must be at most {self.max_length} characters, got {len(value)}"
            return value, None
        if kind == "number":
            if value_type is float and math.isfinite(value):
                return self._in_range(value)
            number, error = _to_number(value)
            return (None, error) if error else self._in_range(number)
        if kind == "integer":
            if value_type is int:
                return self._in_range(value)
            number, error = _to_number(value)
            if error:
                return None, error.replace("a number", "an integer")
            if not float(number).is_integer():
                return None, f"must be an integer, got {value!r}"
            return self._in_range(int(number))
        if kind == "boolean":
            return (value, None) if value_type is bool else _to_bool(value)
        if kind == "date":
            return _to_date(value)
        # enum
        if value_type is not str or value not in self.choices:
            return None, f"must be one of {', '.join(self.choices)}; got {_short(value)}"
        return value, None

    def _in_range(self, number: float) -> tuple[Any, str | None]:
        if self.minimum is not None and number < self.minimum:
            return None, f"must be at least {_num(self.minimum)}, got {_num(number)}"
        if self.maximum is not None and number > self.maximum:
            return None, f"must be at most {_num(self.maximum)}, got {_num(number)}"
        return number, None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _to_number(value: Any) -> tuple[float, str | None]:
    if isinstance(value, bool):
        return 0.0, f"must be a number, got {_type_name(value)}"
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return 0.0, f"must be a number, got {_short(value)}"
    else:
        return 0.0, f"must be a number, got {_type_name(value)}"
    if not math.isfinite(number):
        return 0.0, f"must be a finite number, got {_short(value)}"
    return number, None


def _to_bool(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int) and value in (0, 1):
        return bool(value), None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE_STRINGS:
            return True, None
        if lowered in _FALSE_STRINGS:
            return False, None
    return None, f"must be a boolean (true/false), got {_short(value)}"


def _to_date(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, datetime):
        return value.date().isoformat(), None
    if isinstance(value, date):
        return value.isoformat(), None
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        text = value.strip()
        try:
            date.fromisoformat(text)
        except ValueError:
            return None, f"is not a valid date: {_short(value)}"
        return text, None
    return None, f"must be a date (yyyy-mm-dd), got {_short(value)}"


# --------------------------------------------------------------------------- tools and decisions


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the agent may call; its result is revealed under the tool's name."""

    name: str
    kind: str
    description: str = ""
    requires: tuple[str, ...] = ()
    # kind == "lookup": find the row of `table` whose `match_column` equals case[key_field]
    table: str | None = None
    key_field: str | None = None
    match_column: str | None = None
    returns: tuple[str, ...] = ()
    # kind == "expression": evaluate `expression` over case fields and revealed results
    expression: str | None = None
    result_name: str | None = None
    compiled: Expression | None = field(default=None, compare=False, repr=False)
    # kind == "pack": call the pack's Python tool of this name
    pack_tool: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "description": self.description}
        if self.kind == "lookup":
            out |= {
                "table": self.table,
                "key_field": self.key_field,
                "match_column": self.match_column,
                "returns": list(self.returns),
            }
        elif self.kind == "expression":
            out |= {"expression": self.expression, "result_name": self.result_name}
        else:
            out["pack_tool"] = self.pack_tool
        out["requires"] = list(self.requires)
        return out


@dataclass(frozen=True, slots=True)
class DecisionSpec:
    """A terminal decision and its typed arguments."""

    name: str
    arguments: tuple[FieldSpec, ...] = ()
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "arguments": [argument.to_dict() for argument in self.arguments],
        }


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A validated workflow: case schema, tools, decisions and the step budget."""

    name: str
    title: str
    max_steps: int
    case_fields: tuple[FieldSpec, ...]
    tools: tuple[ToolSpec, ...]
    decisions: tuple[DecisionSpec, ...]
    description: str = ""
    _tools: dict[str, ToolSpec] = field(init=False, repr=False, compare=False)
    _decisions: dict[str, DecisionSpec] = field(init=False, repr=False, compare=False)
    _fields: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tools", {tool.name: tool for tool in self.tools})
        object.__setattr__(self, "_decisions", {decision.name: decision for decision in self.decisions})
        object.__setattr__(self, "_fields", {spec.name: spec for spec in self.case_fields})

    # -- look-ups

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    @property
    def decision_names(self) -> tuple[str, ...]:
        return tuple(self._decisions)

    @property
    def action_names(self) -> tuple[str, ...]:
        """Tools then decisions, in spec order: the RL action index."""
        return self.tool_names + self.decision_names

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self._fields)

    @property
    def expression_names(self) -> frozenset[str]:
        """Top-level names an expression over a case may read: case fields and tool results."""
        return frozenset(self._fields) | frozenset(self._tools)

    def tool(self, name: str) -> ToolSpec:
        return self._tools[name]

    def decision(self, name: str) -> DecisionSpec:
        return self._decisions[name]

    def case_field(self, name: str) -> FieldSpec:
        return self._fields[name]

    def has_tool(self, name: str) -> bool:
        return name in self._tools

    def has_decision(self, name: str) -> bool:
        return name in self._decisions

    # -- validation of inputs

    def validate_case(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Coerced case fields (missing optional fields are ``None``) or CaseValidationError."""
        return _validate_values(self.case_fields, fields, "fields", CaseValidationError, "case")

    def validate_decision(self, name: str, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Coerced decision arguments or CaseValidationError with ``arguments.<name>`` paths."""
        decision = self._decisions.get(name) if isinstance(name, str) else None
        if decision is None:
            raise CaseValidationError(
                [
                    Problem(
                        "decision", f"unknown decision {_short(name)}; one of {', '.join(self._decisions)}"
                    )
                ],
                "decision",
            )
        return _validate_values(
            decision.arguments, arguments or {}, "arguments", CaseValidationError, "decision"
        )

    # -- dict form

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowSpec:
        return _SpecReader().read(data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "max_steps": self.max_steps,
            "case_fields": [spec.to_dict() for spec in self.case_fields],
            "tools": [tool.to_dict() for tool in self.tools],
            "decisions": [decision.to_dict() for decision in self.decisions],
        }


def _validate_values(
    specs: Sequence[FieldSpec],
    values: Mapping[str, Any],
    prefix: str,
    error: type[SpecError],
    what: str,
) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise error([Problem(prefix, f"must be an object, got {_type_name(values)}")], what)
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for spec in specs:
        value = values.get(spec.name)
        if value is None or (value == "" and spec.type not in ("string", "text")):
            if spec.required:
                problems.append(Problem(f"{prefix}.{spec.name}", "is required"))
            out[spec.name] = None
            continue
        coerced, message = spec.coerce(value)
        if message is not None:
            problems.append(Problem(f"{prefix}.{spec.name}", message))
        out[spec.name] = coerced
    for name in values:
        if name not in out:
            problems.append(Problem(f"{prefix}.{name}", "unknown field"))
    if problems:
        raise error(problems, what)
    return out


# --------------------------------------------------------------------------- reading the dict


class _SpecReader:
    """Collects every problem of a spec dict, then builds the spec or raises SpecError."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def read(self, data: Mapping[str, Any]) -> WorkflowSpec:
        if not isinstance(data, Mapping):
            raise SpecError([Problem("", f"spec must be an object, got {_type_name(data)}")])
        self._unknown_keys(
            data, "", {"name", "title", "description", "max_steps", "case_fields", "tools", "decisions"}
        )
        name = data.get("name")
        if not isinstance(name, str) or not _SPEC_NAME.fullmatch(name):
            self.problem("name", "must be a name of letters, digits, '_' or '-', starting with a letter")
            name = "workflow"
        title = self._string(data, "title", "", default=name)
        description = self._string(data, "description", "")
        max_steps = data.get("max_steps", 20)
        if (
            isinstance(max_steps, bool)
            or not isinstance(max_steps, int)
            or not 1 <= max_steps <= _MAX_STEPS_LIMIT
        ):
            self.problem("max_steps", f"must be an integer between 1 and {_MAX_STEPS_LIMIT}")
            max_steps = 20

        case_fields = self._fields(data.get("case_fields"), "case_fields", allow_empty=False)
        field_names = {spec.name for spec in case_fields}
        decisions = self._decisions(data.get("decisions"))
        tools = self._tools(data.get("tools", []), field_names, {decision.name for decision in decisions})
        if self.problems:
            raise SpecError(self.problems)
        return WorkflowSpec(
            name=name,
            title=title,
            max_steps=max_steps,
            case_fields=case_fields,
            tools=tools,
            decisions=decisions,
            description=description,
        )

    # -- helpers

    def _unknown_keys(self, data: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.problem(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def _string(self, data: Mapping[str, Any], key: str, path: str, default: str = "") -> str:
        value = data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(f"{path}.{key}" if path else key, "must be a string")
            return default
        return value

    def _list(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"must be a list, got {_type_name(value)}")
            return []
        return value

    def _identifier(
        self, item: Mapping[str, Any], path: str, seen: set[str], taken: Mapping[str, str]
    ) -> str | None:
        name = item.get("name")
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            self.problem(
                f"{path}.name", "must be an identifier: letters, digits and '_', starting with a letter"
            )
            return None
        if name in RESERVED_NAMES:
            self.problem(f"{path}.name", f"{name!r} is a reserved name")
        elif name in seen:
            self.problem(f"{path}.name", f"duplicate name {name!r}")
        elif name in taken:
            self.problem(f"{path}.name", f"{name!r} is already used by a {taken[name]}")
        seen.add(name)
        return name

    # -- case fields and decision arguments

    def _fields(self, value: Any, path: str, *, allow_empty: bool) -> tuple[FieldSpec, ...]:
        items = self._list(value, path)
        if not items and not allow_empty:
            self.problem(path, "must list at least one field")
        out: list[FieldSpec] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            where = f"{path}[{index}]"
            if not isinstance(item, Mapping):
                self.problem(where, "must be an object")
                continue
            spec = self._field(item, where, seen)
            if spec is not None:
                out.append(spec)
        return tuple(out)

    def _field(self, item: Mapping[str, Any], path: str, seen: set[str]) -> FieldSpec | None:
        self._unknown_keys(
            item,
            path,
            {"name", "type", "required", "minimum", "maximum", "choices", "max_length", "description"},
        )
        name = self._identifier(item, path, seen, {})
        kind = item.get("type")
        if kind not in FIELD_TYPES:
            self.problem(f"{path}.type", f"must be one of {', '.join(FIELD_TYPES)}; got {_short(kind)}")
            return None
        required = item.get("required", True)
        if not isinstance(required, bool):
            self.problem(f"{path}.required", "must be true or false")
            required = True
        bounds: dict[str, float | None] = {}
        for key in ("minimum", "maximum"):
            bound = item.get(key)
            if bound is None:
                bounds[key] = None
            elif kind not in ("integer", "number"):
                self.problem(f"{path}.{key}", f"only integer and number fields have a {key}")
                bounds[key] = None
            elif isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
                self.problem(f"{path}.{key}", "must be a finite number")
                bounds[key] = None
            else:
                bounds[key] = bound
        low, high = bounds["minimum"], bounds["maximum"]
        if low is not None and high is not None and low > high:
            self.problem(f"{path}.minimum", f"must not exceed maximum ({_num(high)})")
        choices: tuple[str, ...] = ()
        raw_choices = item.get("choices")
        if kind == "enum":
            if not isinstance(raw_choices, list) or not raw_choices:
                self.problem(f"{path}.choices", "an enum needs a non-empty list of choices")
            else:
                for position, choice in enumerate(raw_choices):
                    if not isinstance(choice, str) or not choice:
                        self.problem(f"{path}.choices[{position}]", "must be a non-empty string")
                    elif choice in choices:
                        self.problem(f"{path}.choices[{position}]", f"duplicate choice {choice!r}")
                    else:
                        choices += (choice,)
        elif raw_choices is not None:
            self.problem(f"{path}.choices", "only enum fields have choices")
        max_length = item.get("max_length")
        if max_length is not None and (
            kind not in ("string", "text")
            or isinstance(max_length, bool)
            or not isinstance(max_length, int)
            or max_length < 1
        ):
            self.problem(
                f"{path}.max_length", "only string and text fields have a max_length (a positive integer)"
            )
            max_length = None
        description = self._string(item, "description", path)
        if name is None:
            return None
        return FieldSpec(
            name=name,
            type=kind,
            required=required,
            minimum=low,
            maximum=high,
            choices=choices,
            max_length=max_length,
            description=description,
        )

    def _decisions(self, value: Any) -> tuple[DecisionSpec, ...]:
        items = self._list(value, "decisions")
        if not items:
            self.problem("decisions", "must list at least one decision")
        out: list[DecisionSpec] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            path = f"decisions[{index}]"
            if not isinstance(item, Mapping):
                self.problem(path, "must be an object")
                continue
            self._unknown_keys(item, path, {"name", "arguments", "description"})
            name = self._identifier(item, path, seen, {})
            arguments = self._fields(item.get("arguments", []), f"{path}.arguments", allow_empty=True)
            description = self._string(item, "description", path)
            if name is not None:
                out.append(DecisionSpec(name=name, arguments=arguments, description=description))
        return tuple(out)

    # -- tools

    def _tools(self, value: Any, field_names: set[str], decision_names: set[str]) -> tuple[ToolSpec, ...]:
        items = self._list(value, "tools")
        taken = {name: "case field" for name in field_names} | {name: "decision" for name in decision_names}
        seen: set[str] = set()
        names: list[str | None] = []
        for index, item in enumerate(items):
            names.append(
                self._identifier(item, f"tools[{index}]", seen, taken) if isinstance(item, Mapping) else None
            )
        tool_names = {name for name in names if name}
        requires_of: dict[str, tuple[str, ...]] = {}
        out: list[ToolSpec] = []
        pending: list[tuple[int, ToolSpec]] = []
        for index, item in enumerate(items):
            path = f"tools[{index}]"
            if not isinstance(item, Mapping):
                self.problem(path, "must be an object")
                continue
            tool = self._tool(item, path, names[index], field_names, tool_names)
            if tool is not None:
                requires_of[tool.name] = tool.requires
                pending.append((index, tool))
        closure = self._requirement_closure(requires_of, {tool.name: index for index, tool in pending})
        for index, tool in pending:
            if tool.compiled is not None:
                reads = (tool.compiled.names & tool_names) - closure.get(tool.name, set())
                for other in sorted(reads):
                    self.problem(
                        f"tools[{index}].expression",
                        f"reads {other!r}, which is not in requires (it may not be revealed yet)",
                    )
            out.append(tool)
        return tuple(out)

    def _tool(
        self,
        item: Mapping[str, Any],
        path: str,
        name: str | None,
        field_names: set[str],
        tool_names: set[str],
    ) -> ToolSpec | None:
        kind = item.get("kind")
        common = {"name", "kind", "description", "requires"}
        extra = {
            "lookup": {"table", "key_field", "match_column", "returns"},
            "expression": {"expression", "result_name"},
            "pack": {"pack_tool"},
        }
        if kind not in TOOL_KINDS:
            self.problem(f"{path}.kind", f"must be one of {', '.join(TOOL_KINDS)}; got {_short(kind)}")
            return None
        self._unknown_keys(item, path, common | extra[kind])
        description = self._string(item, "description", path)
        requires: list[str] = []
        for position, required in enumerate(self._list(item.get("requires", []), f"{path}.requires")):
            where = f"{path}.requires[{position}]"
            if required not in tool_names:
                self.problem(where, f"unknown tool {_short(required)}")
            elif required == name:
                self.problem(where, "a tool cannot require itself")
            elif required in requires:
                self.problem(where, f"duplicate requirement {required!r}")
            else:
                requires.append(required)
        fields: dict[str, Any] = {}
        if kind == "lookup":
            table = item.get("table")
            if not isinstance(table, str) or not table:
                self.problem(f"{path}.table", "must name a reference table")
            key_field = item.get("key_field")
            if key_field not in field_names:
                self.problem(f"{path}.key_field", f"must be a case field; got {_short(key_field)}")
            match_column = item.get("match_column", key_field)
            if not isinstance(match_column, str) or not match_column:
                self.problem(f"{path}.match_column", "must name a column of the table")
            returns: list[str] = []
            for position, column in enumerate(self._list(item.get("returns", []), f"{path}.returns")):
                if not isinstance(column, str) or not _IDENTIFIER.fullmatch(column) or column == "found":
                    self.problem(
                        f"{path}.returns[{position}]", "must be a column name (an identifier, not 'found')"
                    )
                elif column in returns:
                    self.problem(f"{path}.returns[{position}]", f"duplicate column {column!r}")
                else:
                    returns.append(column)
            fields = {
                "table": table,
                "key_field": key_field,
                "match_column": match_column,
                "returns": tuple(returns),
            }
        elif kind == "expression":
            source = item.get("expression")
            compiled = None
            if not isinstance(source, str):
                self.problem(f"{path}.expression", "must be an expression string")
            else:
                try:
                    compiled = compile_expression(source, names=field_names | tool_names)
                except ExpressionError as error:
                    self.problem(f"{path}.expression", str(error))
            result_name = item.get("result_name", "value")
            if not isinstance(result_name, str) or not _IDENTIFIER.fullmatch(result_name):
                self.problem(f"{path}.result_name", "must be an identifier")
            fields = {"expression": source, "result_name": result_name, "compiled": compiled}
        else:
            pack_tool = item.get("pack_tool", name)
            if not isinstance(pack_tool, str) or not pack_tool:
                self.problem(f"{path}.pack_tool", "must name a tool of the pack")
            fields = {"pack_tool": pack_tool}
        if name is None:
            return None
        return ToolSpec(name=name, kind=kind, description=description, requires=tuple(requires), **fields)

    def _requirement_closure(
        self, requires_of: Mapping[str, tuple[str, ...]], index_of: Mapping[str, int]
    ) -> dict[str, set[str]]:
        """Transitive requirements per tool; a cycle makes its tools uncallable, so it is a problem."""
        closure: dict[str, set[str]] = {}
        reported: set[str] = set()

        def visit(name: str, trail: tuple[str, ...]) -> set[str]:
            if name in closure:
                return closure[name]
            if name in trail:
                cycle = (*trail[trail.index(name) :], name)
                if name not in reported:
                    reported.update(cycle)
                    self.problem(
                        f"tools[{index_of.get(name, 0)}].requires",
                        f"circular requirement: {' -> '.join(cycle)}",
                    )
                return set()
            found: set[str] = set()
            for required in requires_of.get(name, ()):
                found.add(required)
                found |= visit(required, (*trail, name))
            closure[name] = found
            return found

        for name in requires_of:
            visit(name, ())
        return closure
