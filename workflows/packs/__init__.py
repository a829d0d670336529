"""Workflow packs: ready-made workflows with reference data, case generators and solvers.

You are in the pack shelf. ``get_pack("claims")`` returns a :class:`Pack`: the spec, default
rubric and expert rules as plain dicts (fresh copies, safe to edit), the pack's Python tools,
and functions to generate reference tables and labelled cases, adjudicate a case and build the
reference solver. Packs import no Django.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workflows.engine import (
    CaseData,
    Environment,
    Outcome,
    PackTool,
    Policy,
    Rubric,
    RulesPolicy,
    WorkflowSpec,
)

__all__ = ["Pack", "get_pack", "pack_names"]

Tables = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Pack:
    """A packaged workflow. The ``*_dict`` properties return deep copies of the pack's dicts."""

    name: str
    title: str
    spec_source: Mapping[str, Any] = field(repr=False)
    rubric_source: Mapping[str, Any] = field(repr=False)
    rules_source: Mapping[str, Any] = field(repr=False)
    pack_tools: Mapping[str, PackTool] = field(repr=False)
    generate_tables: Callable[[int], Tables] = field(repr=False)
    generate_cases: Callable[..., list[CaseData]] = field(repr=False)
    solver: Callable[[WorkflowSpec], Policy] = field(repr=False)
    adjudicate: Callable[[Mapping[str, Any], Mapping[str, Sequence[Mapping[str, Any]]]], Outcome] = field(
        repr=False
    )
    description: str = ""

    @property
    def spec_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.spec_source))

    @property
    def default_rubric_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.rubric_source))

    @property
    def rules_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.rules_source))

    # -- conveniences for tests, benchmarks and seeding a workflow

    def spec(self) -> WorkflowSpec:
        return WorkflowSpec.from_dict(self.spec_source)

    def rubric(self, spec: WorkflowSpec | None = None) -> Rubric:
        return Rubric.from_dict(self.rubric_source, spec or self.spec())

    def rules_policy(self, spec: WorkflowSpec | None = None) -> RulesPolicy:
        return RulesPolicy(spec or self.spec(), self.rules_source)

    def environment(
        self,
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        *,
        spec: WorkflowSpec | None = None,
        rubric: Rubric | None = None,
        invalid_action_penalty: float = 0.05,
    ) -> Environment:
        """An environment over ``tables`` scored with ``rubric`` (default: the pack's rubric)."""
        spec = spec or self.spec()
        return Environment(
            spec,
            tables,
            rubric=rubric if rubric is not None else self.rubric(spec),
            pack_tools=self.pack_tools,
            invalid_action_penalty=invalid_action_penalty,
        )


_PACK_MODULES = {"claims": "workflows.packs.claims"}


def pack_names() -> tuple[str, ...]:
    return tuple(_PACK_MODULES)


def get_pack(name: str) -> Pack:
    """The pack called ``name``; KeyError naming the available packs otherwise."""
    module = _PACK_MODULES.get(name)
    if module is None:
        raise KeyError(f"unknown pack {name!r}; available: {', '.join(_PACK_MODULES)}")
    return importlib.import_module(module).PACK
