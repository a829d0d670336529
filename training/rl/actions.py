"""The policy's action space: which action, with which arguments, and which are allowed now.

You are in the RL side's hands. An action is factored into heads, all derived from the spec:

- the **action head**: a categorical over ``spec.action_names`` (tools, then decisions — the
  engine's stable action index);
- one **argument head** per decision argument:

  - ``choice`` heads for enum arguments (a categorical over the choices) and booleans (no/yes);
  - ``pointer`` heads for number, integer and date arguments: a categorical over *candidate
    slots*, the values of that type present in the observation — case fields
    (``amount_claimed``) and revealed tool results (``compute_payout.payout``). Pointing beats
    regressing a number: the amount is *exactly* a value the workflow computed (a rubric
    tolerance of 1.00 is hit or missed by cents, a regression head never lands on 24,163.14),
    there is no scale to learn across claims of 50 and 500,000, and the explanation can cite
    where the number came from ("amount 24,163.14 = compute_payout.payout");
  - string and text arguments get no head: they are filled with a short note (the rationale).

**The mask** (``True`` = allowed), computed from the observation before every step:

- a tool is allowed when it has not been called yet this episode (repeating one only costs a
  step: the engine reveals nothing new), every tool in its ``requires`` has revealed, and at
  least two steps are left (the last step is kept for a decision, so an episode never runs out
  of budget undecided);
- a decision is allowed when each of its pointer arguments has at least one valid candidate
  (present, within the argument's minimum/maximum, integral for integers) — decisions are
  otherwise always allowed: *when* to decide is what the policy learns from the rubric;
- a pointer slot is allowed when its value is a valid candidate for that argument; choice
  options are always allowed.

If a state left nothing allowed, every decision is allowed (the engine then penalises a bad one).

The flat mask is ``[action mask (A) | each argument head's options]``, the same layout as the
Gymnasium adapter's ``MultiDiscrete`` action and its ``info["action_mask"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from workflows.engine import Action, Observation, WorkflowSpec, format_value

from .features import Featurizer

__all__ = ["ActionLayout", "ArgumentHead", "CandidateSlot", "MaskTracker"]


@dataclass(frozen=True, slots=True)
class CandidateSlot:
    """A value an argument may point at: a case field (``tool`` is None) or a tool result key."""

    name: str  # "amount_claimed", "compute_payout.payout"
    type: str  # "number" or "date"
    tool: str | None
    key: str

    def value(self, observation: Observation) -> Any:
        if self.tool is None:
            return observation.case.get(self.key)
        result = observation.revealed.get(self.tool)
        return None if result is None else result.get(self.key)


@dataclass(frozen=True, slots=True)
class ArgumentHead:
    """One decision argument's head: its options and where they sit in the flat logits/mask."""

    decision: str
    action_index: int  # index of the owning decision in spec.action_names
    argument: str
    kind: str  # "choice" or "pointer"
    options: tuple[Any, ...]  # choices, or CandidateSlot for pointers
    start: int  # offset in the flat argument logits (not counting the action head)
    type: str  # the argument's field type
    minimum: float | None
    maximum: float | None

    @property
    def size(self) -> int:
        return len(self.options)

    def option_label(self, index: int) -> str:
        option = self.options[index]
        return option.name if isinstance(option, CandidateSlot) else str(option)

    def valid(self, value: Any) -> bool:
        """Is ``value`` (from a candidate slot) an acceptable value for this argument?"""
        if self.type == "date":
            if not isinstance(value, str):
                return False
            try:
                date.fromisoformat(value)
            except ValueError:
                return False
            return True
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.type == "integer" and not float(value).is_integer():
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        return not (self.maximum is not None and value > self.maximum)


class ActionLayout:
    """The factored action space of a spec, with masks and decoding into engine Actions."""

    def __init__(self, spec: WorkflowSpec, featurizer: Featurizer) -> None:
        self.spec = spec
        self.action_names: tuple[str, ...] = spec.action_names
        self.num_tools = len(spec.tool_names)
        self.num_actions = len(self.action_names)
        numeric_slots, date_slots = _candidate_slots(spec, featurizer)
        heads: list[ArgumentHead] = []
        self.text_arguments: dict[str, list[tuple[str, int | None]]] = {}
        start = 0
        for offset, decision in enumerate(spec.decisions):
            action_index = self.num_tools + offset
            for argument in decision.arguments:
                options: tuple[Any, ...]
                if argument.type == "enum":
                    kind, options = "choice", tuple(argument.choices)
                elif argument.type == "boolean":
                    kind, options = "choice", (False, True)
                elif argument.type in ("number", "integer"):
                    kind, options = "pointer", tuple(numeric_slots)
                elif argument.type == "date":
                    kind, options = "pointer", tuple(date_slots)
                else:  # string / text: filled with a note, no head
                    self.text_arguments.setdefault(decision.name, []).append(
                        (argument.name, argument.max_length)
                    )
                    continue
                heads.append(
                    ArgumentHead(
                        decision.name,
                        action_index,
                        argument.name,
                        kind,
                        options,
                        start,
                        argument.type,
                        argument.minimum,
                        argument.maximum,
                    )
                )
                start += len(options)
        self.heads: tuple[ArgumentHead, ...] = tuple(heads)
        self.argument_size = start
        self.mask_size = self.num_actions + start
        self._heads_by_action: dict[int, list[tuple[int, ArgumentHead]]] = {}
        for position, head in enumerate(self.heads):
            self._heads_by_action.setdefault(head.action_index, []).append((position, head))
        self._tool_requires = [(name, tuple(spec.tool(name).requires)) for name in spec.tool_names]
        self._pointer_heads = [(p, h) for p, h in enumerate(self.heads) if h.kind == "pointer"]

    # -- shapes

    @property
    def head_sizes(self) -> list[int]:
        """Sizes of the argument heads, in order (the MultiDiscrete dims after the action)."""
        return [head.size for head in self.heads]

    @property
    def head_owner(self) -> list[int]:
        """For each argument head, the action index of the decision that owns it."""
        return [head.action_index for head in self.heads]

    def mask_names(self) -> list[str]:
        names = list(self.action_names)
        for head in self.heads:
            names += [f"{head.decision}.{head.argument}={head.option_label(i)}" for i in range(head.size)]
        return names

    # -- masks

    def mask(self, observation: Observation, out: np.ndarray | None = None) -> np.ndarray:
        """The flat boolean mask for ``observation`` (see the module docstring)."""
        mask = np.ones(self.mask_size, dtype=bool) if out is None else out
        if out is not None:
            mask[:] = True
        base = self.num_actions
        valid_counts = [0] * len(self.heads)
        for position, head in self._pointer_heads:
            for i, slot in enumerate(head.options):
                ok = head.valid(slot.value(observation))
                mask[base + head.start + i] = ok
                valid_counts[position] += ok
        mask[:base] = self._action_part(observation, valid_counts)
        return mask

    def _action_part(self, observation: Observation, valid_counts: Sequence[int]) -> list[bool]:
        """Tool and decision entries, given how many options each pointer head has (see above)."""
        revealed = observation.revealed
        room = observation.steps_left > 1
        part = [
            room and name not in revealed and all(r in revealed for r in requires)
            for name, requires in self._tool_requires
        ]
        decisions = [True] * (self.num_actions - self.num_tools)
        for position, head in self._pointer_heads:
            if not valid_counts[position]:
                decisions[head.action_index - self.num_tools] = False
        if not any(part) and not any(decisions):
            decisions = [True] * len(decisions)
        return part + decisions

    def tracker(self) -> MaskTracker:
        """An incremental mask for one environment slot (pointer slots re-checked only on reveals)."""
        return MaskTracker(self)

    # -- decoding

    def arguments(
        self, action_index: int, head_indices: Sequence[int], observation: Observation
    ) -> tuple[dict[str, Any], list[str]]:
        """Arguments of a decision from its heads' chosen options, and where each value came from."""
        arguments: dict[str, Any] = {}
        sources: list[str] = []
        for position, head in self._heads_by_action.get(action_index, ()):
            choice = int(head_indices[position])
            option = head.options[choice]
            if isinstance(option, CandidateSlot):
                value = option.value(observation)
                if head.type == "integer" and isinstance(value, float) and value.is_integer():
                    value = int(value)
                arguments[head.argument] = value
                sources.append(f"{head.argument} {format_value(value)} = {option.name}")
            else:
                arguments[head.argument] = option
                sources.append(f"{head.argument} {format_value(option)}")
        return arguments, sources

    def build_action(
        self,
        action_index: int,
        head_indices: Sequence[int],
        observation: Observation,
        *,
        confidence: float = 1.0,
        probabilities: Mapping[str, float] | None = None,
        explain: bool = True,
        facts: str | None = None,
    ) -> Action:
        """The engine Action for the chosen indices, with an explanation citing the facts seen.

        ``facts`` may pass :meth:`facts_text` of ``observation`` when the caller has it already."""
        name = self.action_names[action_index]
        if action_index < self.num_tools:
            explanation = f"Call {name}: not revealed yet." if explain else ""
            return Action.tool(
                name, explanation=explanation, confidence=confidence, probabilities=dict(probabilities or {})
            )
        arguments, sources = self.arguments(action_index, head_indices, observation)
        explanation = self.explain(name, sources, observation, confidence, facts=facts) if explain else ""
        for argument, max_length in self.text_arguments.get(name, ()):
            note = explanation or name
            arguments[argument] = note[:max_length] if max_length else note
        return Action.decide(
            name,
            arguments,
            explanation,
            confidence=confidence,
            probabilities=dict(probabilities or {}),
        )

    def explain(
        self,
        decision: str,
        sources: Sequence[str],
        observation: Observation,
        confidence: float,
        *,
        facts: str | None = None,
    ) -> str:
        """ "<decision> (<args and their sources>), confidence p. Facts seen: <tool>: <key> <value>; …"""
        head = decision + (f" ({', '.join(sources)})" if sources else "")
        seen = self.facts_text(observation) if facts is None else facts
        return f"{head}, confidence {confidence:.2f}. Facts seen: {seen}."

    @staticmethod
    def facts_text(observation: Observation) -> str:
        """Every fact the called tools revealed, in the workflow's words (long texts left out)."""
        facts = []
        for tool, result in observation.revealed.items():
            shown = [
                f"{key} {format_value(value)}"
                for key, value in result.items()
                if value is not None and not (isinstance(value, str) and len(value) > 80)
            ]
            if shown:
                facts.append(f"{tool}: {', '.join(shown)}")
        return "; ".join(facts) if facts else "no tool was called"


def _candidate_slots(
    spec: WorkflowSpec, featurizer: Featurizer
) -> tuple[list[CandidateSlot], list[CandidateSlot]]:
    numeric: list[CandidateSlot] = []
    dates: list[CandidateSlot] = []
    for field in spec.case_fields:
        if field.type in ("number", "integer"):
            numeric.append(CandidateSlot(field.name, "number", None, field.name))
        elif field.type == "date":
            dates.append(CandidateSlot(field.name, "date", None, field.name))
    for tool in featurizer.schema["tools"]:
        for entry in tool["keys"]:
            name = f"{tool['name']}.{entry['key']}"
            if entry["type"] == "number":
                numeric.append(CandidateSlot(name, "number", tool["name"], entry["key"]))
            elif entry["type"] == "date":
                dates.append(CandidateSlot(name, "date", tool["name"], entry["key"]))
    return numeric, dates


class MaskTracker:
    """The mask of one environment slot, step after step.

    Pointer-slot validity only changes when the case changes or a tool reveals (revealed dicts
    are never mutated), so each slot is checked once per episode; a step re-derives the cheap
    tool and decision entries.
    """

    def __init__(self, layout: ActionLayout) -> None:
        self.layout = layout
        self.row = np.ones(layout.mask_size, dtype=bool)
        self._case: Mapping[str, Any] | None = None
        self._checked: set[str | None] = set()
        self._counts = [0] * len(layout.heads)
        self._by_source: dict[str | None, list[tuple[int, int, ArgumentHead, CandidateSlot]]] = {}
        self._pointer_positions: list[int] = []
        base = layout.num_actions
        for position, head in layout._pointer_heads:
            for i, slot in enumerate(head.options):
                entry = (base + head.start + i, position, head, slot)
                self._by_source.setdefault(slot.tool, []).append(entry)
                self._pointer_positions.append(base + head.start + i)

    def _check(self, source: str | None, observation: Observation) -> None:
        row, counts = self.row, self._counts
        for index, position, head, slot in self._by_source.get(source, ()):
            ok = head.valid(slot.value(observation))
            row[index] = ok
            counts[position] += ok
        self._checked.add(source)

    def mask(self, observation: Observation, out: np.ndarray | None = None) -> np.ndarray:
        row = self.row
        revealed = observation.revealed
        if observation.case is not self._case:
            self._case = observation.case
            row[self.layout.num_actions :] = True
            row[self._pointer_positions] = False
            self._counts = [0] * len(self.layout.heads)
            self._checked = set()
            self._check(None, observation)
        if len(revealed) + 1 != len(self._checked):
            for tool in revealed:
                if tool not in self._checked:
                    self._check(tool, observation)
        row[: self.layout.num_actions] = self.layout._action_part(observation, self._counts)
        if out is None:
            return row.copy()
        out[:] = row
        return out
