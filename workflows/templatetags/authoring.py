"""Template filters of the expert screens: permission checks, look-ups and number formats."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def can(actor: Any, permission: str) -> bool:
    """``{% if actor|can:"workflow.edit" %}``: hides what the server would refuse anyway."""
    return actor is not None and actor.can(permission)


@register.filter
def get(mapping: Any, key: Any) -> Any:
    """``{{ dict|get:key }}`` for keys that are not valid template identifiers."""
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None


@register.filter
def percent(value: Any) -> int:
    """A share in [0, 1] as a whole percentage clamped to 0-100 (bar widths)."""
    try:
        return max(0, min(100, round(float(value) * 100)))
    except (TypeError, ValueError):
        return 0


@register.filter
def signed_percent(value: Any, scale: Any = 1) -> int:
    """``|value| / scale`` as a percentage clamped to 0-100 (attribution bars of either sign)."""
    try:
        return max(0, min(100, round(abs(float(value)) / float(scale) * 100)))
    except (TypeError, ValueError, ZeroDivisionError):
        return 0
