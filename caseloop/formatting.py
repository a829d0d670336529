"""Small text formats for the operations pages, made in Python rather than with template filters:
a list page formats hundreds of cells, and Django's ``timesince`` and ``naturaltime`` (translated,
pluralised) cost more per cell than the page's queries."""

from __future__ import annotations

from datetime import timedelta


def duration(span: timedelta) -> str:
    """A span in its two largest units: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


def arguments(values: dict | None) -> str:
    """Decision arguments as ``name=value`` pairs."""
    return " ".join(f"{name}={value}" for name, value in (values or {}).items())
