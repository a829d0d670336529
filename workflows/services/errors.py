"""Turning engine problems into Django validation errors that name the field or line."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from workflows.engine.errors import SpecError


def validation_error_from(error: SpecError, *, prefix: str = "") -> ValidationError:
    """A ValidationError keyed by each problem's path (e.g. ``fields.amount_claimed``, ``line 4: …``)."""
    by_path: dict[str, list[str]] = {}
    for problem in error.problems:
        by_path.setdefault(f"{prefix}{problem.path}", []).append(problem.message)
    return ValidationError(by_path)
