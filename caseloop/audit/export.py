"""The audit export format (JSONL) and its re-verification. Pure Python: no database, no Django.

An export holds, for each organisation in turn, its events in sequence order, one JSON object a
line, followed by one ``{"chain_head": {...}}`` line with the head the database held when the
export was taken. An event line carries every hashed field under the name
:func:`caseloop.audit.chain.event_content` takes, plus ``id``, ``prev_hash`` and ``hash``::

    {"actor_kind": "user", "actor_label": "ana", "actor_ref": "7", "created_at": "2026-…+00:00",
     "hash": "…", "id": 12, "organization_id": 3, "payload": {…}, "prev_hash": "…",
     "request_id": "", "sequence": 5, "subject_id": "41", "subject_type": "workflows.case",
     "verb": "case.created"}

A third party re-verifies with :func:`verify_export` (or by hand: ``hash`` is the SHA-256 of
``prev_hash`` followed by the canonical JSON of ``event_content(...)`` built from the line, and
each ``prev_hash`` is the previous line's ``hash``, starting from 64 zeros), then compares the
``chain_head`` hash with one obtained independently, e.g. from an earlier export.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from caseloop.audit.chain import GENESIS_HASH, HASHED_FIELDS, canonical_json, chain_hash, event_content

# The fields of an event line, in the order of the model. All but id, prev_hash and hash are hashed.
EVENT_FIELDS: tuple[str, ...] = ("id", *HASHED_FIELDS, "prev_hash", "hash")
_UNHASHED = frozenset({"id", "prev_hash", "hash"})


def event_line(event: dict[str, Any]) -> str:
    """One export line for an event given as a dict of :data:`EVENT_FIELDS` (created_at a datetime)."""
    record = {name: event[name] for name in EVENT_FIELDS}
    record["created_at"] = event["created_at"].isoformat(timespec="microseconds")
    return canonical_json(record)


def head_line(
    *, organization_id: int, organization: str, sequence: int, hash: str, exported_at: datetime
) -> str:
    return canonical_json(
        {
            "chain_head": {
                "organization_id": organization_id,
                "organization": organization,
                "sequence": sequence,
                "hash": hash,
                "exported_at": exported_at.isoformat(timespec="microseconds"),
            }
        }
    )


@dataclass(frozen=True, slots=True)
class ExportBreak:
    """The first line of an export that does not verify."""

    line: int  # 1-based line number in the file
    organization_id: int | None
    sequence: int | None
    id: int | None
    expected_hash: str | None
    found_hash: str | None
    reason: str

    def __str__(self) -> str:
        return (
            f"line {self.line}: organisation {self.organization_id}, sequence {self.sequence}, "
            f"event id {self.id}: {self.reason} (expected {self.expected_hash}, found {self.found_hash})"
        )


@dataclass(frozen=True, slots=True)
class ExportVerifyResult:
    ok: bool
    checked: int  # event lines verified before the first break (all of them when ok)
    heads: dict[int, tuple[int, str]]  # organization_id -> (sequence, hash) of each verified chain_head line
    first_break: ExportBreak | None = None


def _event_hash(record: dict[str, Any]) -> str:
    content = event_content(
        **{name: record[name] for name in EVENT_FIELDS if name not in _UNHASHED and name != "created_at"},
        created_at=datetime.fromisoformat(record["created_at"]),
    )
    return chain_hash(record["prev_hash"], content)


def verify_export(lines: Iterable[str]) -> ExportVerifyResult:
    """Re-verify an export: every hash, every link, no gaps, and each chain ends at its chain_head line."""
    checked = 0
    heads: dict[int, tuple[int, str]] = {}
    # organization_id -> (last sequence, last hash, last event id) of chains still open (no chain_head yet)
    open_chains: dict[int, tuple[int, str, int | None]] = {}

    def broken(line: int, reason: str, **where: Any) -> ExportVerifyResult:
        where = {
            "organization_id": None,
            "sequence": None,
            "id": None,
            "expected_hash": None,
            "found_hash": None,
        } | where
        return ExportVerifyResult(False, checked, heads, ExportBreak(line=line, reason=reason, **where))

    number = 0
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            return broken(number, "blank line")
        try:
            record = json.loads(text)
        except ValueError as exc:
            return broken(number, f"not JSON: {exc}")
        if not isinstance(record, dict):
            return broken(number, "not a JSON object")

        if "chain_head" in record:
            head = record["chain_head"]
            if not isinstance(head, dict):
                return broken(number, "chain_head is not a JSON object")
            org = head.get("organization_id")
            if not isinstance(org, int):
                return broken(number, "chain_head lacks an integer organization_id")
            if org in heads:
                return broken(number, "a second chain_head line for this organisation", organization_id=org)
            sequence, last_hash, last_id = open_chains.pop(org, (0, GENESIS_HASH, None))
            if (head.get("sequence"), head.get("hash")) != (sequence, last_hash):
                return broken(
                    number,
                    f"chain_head says #{head.get('sequence')} but the last event exported is #{sequence}",
                    organization_id=org,
                    sequence=sequence,
                    id=last_id,
                    expected_hash=last_hash,
                    found_hash=head.get("hash"),
                )
            heads[org] = (sequence, last_hash)
            continue

        missing = [name for name in EVENT_FIELDS if name not in record]
        if missing:
            return broken(number, f"event line lacks {', '.join(missing)}", id=record.get("id"))
        org, sequence, event_id = record["organization_id"], record["sequence"], record["id"]
        where = {"organization_id": org, "sequence": sequence, "id": event_id}
        if org in heads:
            return broken(number, "event after its organisation's chain_head line", **where)
        last_sequence, last_hash, _ = open_chains.get(org, (0, GENESIS_HASH, None))
        if sequence != last_sequence + 1:
            return broken(number, f"sequence gap: expected #{last_sequence + 1}", **where)
        if record["prev_hash"] != last_hash:
            reason = f"prev_hash does not link to event #{last_sequence}"
            return broken(number, reason, expected_hash=last_hash, found_hash=record["prev_hash"], **where)
        try:
            digest = _event_hash(record)
        except (TypeError, ValueError) as exc:
            return broken(number, f"cannot rebuild the hashed content: {exc}", **where)
        if digest != record["hash"]:
            reason = "hash does not match the event's content"
            return broken(number, reason, expected_hash=digest, found_hash=record["hash"], **where)
        open_chains[org] = (sequence, digest, event_id)
        checked += 1

    if open_chains:
        org, (sequence, last_hash, last_id) = next(iter(open_chains.items()))
        return broken(
            number + 1,
            "the export ends without this organisation's chain_head line (truncated?)",
            organization_id=org,
            sequence=sequence,
            id=last_id,
            expected_hash=last_hash,
        )
    if not heads:
        return broken(number + 1, "no chain_head line: not a complete export")
    return ExportVerifyResult(True, checked, heads)


def verify_export_file(path: str | Path) -> ExportVerifyResult:
    with open(path, encoding="utf-8") as lines:
        return verify_export(line.rstrip("\n") for line in lines)
