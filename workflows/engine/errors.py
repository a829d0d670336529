"""Engine errors: what a workflow author, a rubric author or an API client did wrong.

You are in the engine's vocabulary of failure. Every validation error carries the full list of
problems, each with the path of the offending item (``case_fields[2].minimum``,
``criteria[3].params.tolerance``, ``fields.report_date``), so a form or an API response can
point at all of them at once instead of one per round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, located by a dotted/indexed path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class SpecError(EngineError):
    """A workflow spec (or a dict checked against one) is invalid; ``problems`` lists every issue."""

    def __init__(self, problems: Iterable[Problem], what: str = "spec") -> None:
        self.problems: list[Problem] = list(problems)
        self.what = what
        super().__init__(self._render())

    def _render(self) -> str:
        count = len(self.problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        return f"invalid {self.what} ({count} problem{'s' if count != 1 else ''}):\n{lines}"

    def paths(self) -> list[str]:
        return [problem.path for problem in self.problems]

    def to_dict(self) -> dict[str, object]:
        return {"error": self.what, "problems": [problem.to_dict() for problem in self.problems]}


class CaseValidationError(SpecError):
    """Case fields (or decision arguments) do not match the workflow's schema."""

    def __init__(self, problems: Iterable[Problem], what: str = "case") -> None:
        super().__init__(problems, what)


class RubricError(SpecError):
    """A rubric dict is invalid."""

    def __init__(self, problems: Iterable[Problem], what: str = "rubric") -> None:
        super().__init__(problems, what)


class ExpressionError(EngineError):
    """An expression or template was refused at compile time or failed while evaluating."""
