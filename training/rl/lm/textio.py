"""The text interface of language-model policies: observations as text, one action per line.

You are at the language-model policy's desk. An episode is a transcript of lines; the
environment writes the case and the tool results, the model writes one action per turn, and
every line ends with a newline::

    CASE claims
    TOOLS lookup_policy check_coverage claim_history fraud_score compute_payout
    DECISIONS approve(amount) deny(reason_code) escalate(reason)
    claim_type: weather
    amount_claimed: 2149.32
    ...
    CALL lookup_policy {}
    RESULT lookup_policy {"found": true, "holder": "Maria Tanaka", "status": "active", ...}
    CALL check_coverage {}
    RESULT check_coverage {"in_force": true, ...}
    DECIDE approve {"amount": 1899.32} BECAUSE Policy AUT-538806 is active ...

The model's lines (the only tokens it is trained on) follow a strict grammar::

    CALL <tool> [<json object>]
    DECIDE <decision> <json object> BECAUSE <explanation>

Keywords are upper case, names are identifiers, arguments are one JSON object (``{}`` may be
left out of a CALL), and a decision's explanation is not empty. Whitespace around and between
the parts is tolerated; anything else is not: a line that does not follow the grammar becomes a
*parse-error action* (kind ``parse_error``), which the environment records and penalises like
any invalid action (``invalid_action_penalty``), and the next observation line says what was
wrong (``ERROR could not parse the action: …``). Parsing never raises.

Unknown tool or decision names and bad argument values parse fine: the environment refuses them
as invalid actions (``ERROR unknown tool 'x'``), exactly as for any other policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.engine import Action, Observation, WorkflowSpec

__all__ = [
    "PARSE_ERROR",
    "TEXT_FORMAT_VERSION",
    "ParsedLine",
    "Transcript",
    "format_action",
    "parse_action",
    "render_case",
]

TEXT_FORMAT_VERSION = 1
PARSE_ERROR = "parse_error"  # the kind and name of the action an unparsable line becomes
MAX_TEXT_CHARS = 300  # text fields are cut to this many characters in the case header

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"\s+")
_DECODER = json.JSONDecoder()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def _field_text(value: Any, max_chars: int) -> str:
    if isinstance(value, str):
        flat = _SPACE.sub(" ", value).strip()
        return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"
    return _json(value)


def render_case(
    spec: WorkflowSpec, fields: Mapping[str, Any], *, max_text_chars: int = MAX_TEXT_CHARS
) -> str:
    """The transcript's opening: the workflow's tools and decisions, then the case fields."""
    decisions = " ".join(
        f"{decision.name}({','.join(argument.name for argument in decision.arguments)})"
        for decision in spec.decisions
    )
    lines = [f"CASE {spec.name}", "TOOLS " + " ".join(spec.tool_names), f"DECISIONS {decisions}"]
    for spec_field in spec.case_fields:
        value = fields.get(spec_field.name)
        if value is None:
            continue
        lines.append(f"{spec_field.name}: {_field_text(value, max_text_chars)}")
    return "\n".join(lines) + "\n"


def render_result(tool: str, result: Mapping[str, Any] | None) -> str:
    return f"RESULT {tool} {_json(dict(result or {}))}\n"


def render_error(message: str) -> str:
    return f"ERROR {_SPACE.sub(' ', message).strip()}\n"


def format_action(action: Action) -> str:
    """The line a model should write for ``action`` (demonstrations); ends with a newline."""
    if action.is_decision:
        explanation = _SPACE.sub(" ", action.explanation or "").strip() or "as the checks show"
        return f"DECIDE {action.name} {_json(dict(action.arguments))} BECAUSE {explanation}\n"
    return f"CALL {action.name} {_json(dict(action.arguments))}\n"


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """What a model line parsed into: an action to take, or the reason it could not be parsed."""

    text: str
    action: Action
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _failure(text: str, reason: str) -> ParsedLine:
    action = Action(
        PARSE_ERROR,
        PARSE_ERROR,
        {"text": text[:500]},
        f"could not parse the action: {reason}",
        confidence=0.0,
    )
    return ParsedLine(text, action, reason)


def parse_action(text: str, *, confidence: float = 1.0) -> ParsedLine:
    """Parse one model line (text after the first newline is ignored). Never raises."""
    if not isinstance(text, str):
        return _failure(repr(text)[:200], "the output is not text")
    line = text.split("\n", 1)[0].strip()
    if not line:
        return _failure(line, "empty line; expected CALL or DECIDE")
    keyword, _, rest = line.partition(" ")
    if keyword not in ("CALL", "DECIDE"):
        return _failure(line, f"the line starts with {keyword[:40]!r}; expected CALL or DECIDE")
    rest = rest.lstrip()
    match = _NAME.match(rest)
    if match is None:
        return _failure(line, f"{keyword} must be followed by a name")
    name = match.group(0)
    rest = rest[match.end() :]
    if rest and not rest[0].isspace() and rest[0] != "{":
        return _failure(line, f"unexpected {rest[:20]!r} after the name {name!r}")
    rest = rest.lstrip()
    arguments: dict[str, Any] = {}
    if rest.startswith("{"):
        try:
            value, end = _DECODER.raw_decode(rest)
        except json.JSONDecodeError as exc:
            return _failure(line, f"the arguments are not valid JSON ({exc.msg} at column {exc.colno})")
        if not isinstance(value, dict):
            return _failure(line, "the arguments must be a JSON object")
        arguments = value
        rest = rest[end:].lstrip()
    elif keyword == "DECIDE":
        return _failure(line, "DECIDE needs a JSON object of arguments, e.g. {}")
    if keyword == "CALL":
        if rest:
            return _failure(line, f"unexpected text after the arguments: {rest[:40]!r}")
        return ParsedLine(line, Action.tool(name, arguments, confidence=confidence))
    because, _, explanation = rest.partition(" ")
    if because != "BECAUSE":
        return _failure(line, "DECIDE needs BECAUSE <explanation> after the arguments")
    explanation = explanation.strip()
    if not explanation:
        return _failure(line, "the explanation after BECAUSE is empty")
    return ParsedLine(line, Action.decide(name, arguments, explanation, confidence=confidence))


@dataclass(slots=True)
class Transcript:
    """One episode as text segments, built turn by turn from observations and model lines.

    ``segments`` alternate between the environment's text (``agent=False``) and the model's lines
    (``agent=True``). Both the training rollouts and the serving policy build their prompts here,
    so what a model sees in production is exactly what it was trained on.
    """

    spec: WorkflowSpec
    max_text_chars: int = MAX_TEXT_CHARS
    segments: list[tuple[str, bool]] = field(default_factory=list)
    _last: ParsedLine | None = None

    def observe(self, observation: Observation) -> str:
        """Append (and return) the environment's text for ``observation``: the case at the first
        step, afterwards the result or error of the previous action."""
        if not self.segments:
            # The case, and the results of any tool already revealed when the episode starts.
            text = render_case(self.spec, observation.case, max_text_chars=self.max_text_chars) + "".join(
                render_result(tool, observation.revealed[tool])
                for tool in self.spec.tool_names
                if tool in observation.revealed
            )
        else:
            last = self._last
            if last is not None and not last.ok:
                text = render_error(f"could not parse the action: {last.error}")
            elif observation.last_error:
                text = render_error(observation.last_error)
            elif last is not None and not last.action.is_decision:
                text = render_result(last.action.name, observation.revealed.get(last.action.name))
            else:
                text = ""
        if text:
            self.segments.append((text, False))
        return text

    def act(self, text: str, *, confidence: float = 1.0) -> ParsedLine:
        """Record the model's line (cut at its first newline) and parse it."""
        line = text.split("\n", 1)[0]
        self.segments.append((line + "\n", True))
        parsed = parse_action(line, confidence=confidence)
        self._last = parsed
        return parsed

    def act_action(self, action: Action) -> None:
        """Record a demonstration's action as the model's line."""
        line = format_action(action)
        self.segments.append((line, True))
        self._last = ParsedLine(line.rstrip("\n"), action)

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.segments)
