"""Readable differences between two versions of a workflow spec or of a rubric.

You are in the engine's records office. A version history is only useful if an expert can see
what changed without reading two JSON documents side by side, so items are matched by name
(case fields, tools, decisions and their arguments, criteria, shaping bonuses) and each change
is reported as an addition, a removal or a list of ``key: old → new`` edits. A renamed item
shows as one removal and one addition; a change of order is reported once per section.
Plain dicts in, plain data out: no Django, no validation (diff what was stored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Change", "Detail", "rubric_diff", "spec_diff"]

ADDED, REMOVED, CHANGED, REORDERED = "added", "removed", "changed", "reordered"
_SPEC_SETTINGS = ("name", "title", "description", "max_steps")
_SPEC_SECTIONS = ("case_fields", "tools", "decisions")


@dataclass(frozen=True, slots=True)
class Detail:
    """One key of an item: its value before and after (``None`` when absent on that side)."""

    key: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class Change:
    """What happened to one item of one section between two versions."""

    section: str  # settings, case_fields, tools, decisions, criteria, shaping
    item: str  # the item's name, or the setting's key
    kind: str  # added, removed, changed, reordered
    details: tuple[Detail, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "item": self.item,
            "kind": self.kind,
            "details": [detail.to_dict() for detail in self.details],
        }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists of named dicts keyed by name (``arguments.amount.type``).
    Empty lists and dicts flatten to nothing: "no requirements" and "requires: []" read the same."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= _flatten(inner, f"{prefix}{key}.")
        return out
    if _is_named_list(value):
        out = {}
        for item in value:
            out |= _flatten({k: v for k, v in item.items() if k != "name"}, f"{prefix}{item['name']}.")
        return out
    if isinstance(value, list) and not value:
        return {}
    return {prefix[:-1]: value}


def _is_named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in value)
    )


def _details(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Detail, ...]:
    before, after = _flatten(old), _flatten(new)
    keys = list(before) + [key for key in after if key not in before]
    return tuple(
        Detail(key, before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)
    )


def _by_name(items: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(items, Sequence) or isinstance(items, str):
        return {}
    return {
        str(item["name"]): item
        for item in items
        if isinstance(item, Mapping) and item.get("name") is not None
    }


def _named_section(section: str, old_items: Any, new_items: Any) -> list[Change]:
    old, new = _by_name(old_items), _by_name(new_items)
    changes: list[Change] = []
    for name, item in old.items():
        if name not in new:
            changes.append(Change(section, name, REMOVED, _details(item, {})))
        else:
            details = _details(item, new[name])
            if details:
                changes.append(Change(section, name, CHANGED, details))
    changes.extend(
        Change(section, name, ADDED, _details({}, item)) for name, item in new.items() if name not in old
    )
    kept_old = [name for name in old if name in new]
    kept_new = [name for name in new if name in old]
    if kept_old != kept_new:
        changes.append(Change(section, "order", REORDERED, (Detail("order", kept_old, kept_new),)))
    return changes


def _settings(
    section: str, keys: Sequence[str], old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[Change]:
    changes = []
    for key in keys:
        if old.get(key) != new.get(key):
            kind = ADDED if key not in old else REMOVED if key not in new else CHANGED
            changes.append(Change(section, key, kind, (Detail(key, old.get(key), new.get(key)),)))
    return changes


def spec_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """What changed from spec ``old`` to spec ``new``: settings, then fields, tools and decisions."""
    changes = _settings("settings", _SPEC_SETTINGS, old, new)
    for section in _SPEC_SECTIONS:
        changes.extend(_named_section(section, old.get(section), new.get(section)))
    return changes


def rubric_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """What changed from rubric ``old`` to rubric ``new``: step cost, shaping bonuses, criteria."""
    changes = _settings("settings", ("step_cost",), old, new)
    old_shaping, new_shaping = old.get("shaping") or {}, new.get("shaping") or {}
    changes.extend(
        _settings("shaping", list(dict.fromkeys([*old_shaping, *new_shaping])), old_shaping, new_shaping)
    )
    changes.extend(_named_section("criteria", old.get("criteria"), new.get("criteria")))
    return changes
