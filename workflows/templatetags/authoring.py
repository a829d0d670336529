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


@register.filter
def number(value: Any) -> str:
    """1.0 → "1", 0.005 → "0.005": weights and costs as an expert wrote them."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    return f"{value:g}"


@register.filter
def words(key: Any) -> str:
    """``case_fields`` → "Case fields", ``numeric_tolerance`` → "Numeric tolerance"."""
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]
