"""Canonical form and hashing of audit events — the one definition used to write and to verify.

hash = sha256(prev_hash ‖ canonical JSON of the event's content), where canonical JSON has sorted
keys, no insignificant whitespace and UTF-8 text. Timestamps are ISO 8601 in UTC with microseconds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

# prev_hash of every organisation's first event, and the hash of a chain with no events yet.
GENESIS_HASH = "0" * 64


# One encoder, built once: json.dumps(value, **these options) would build it anew on every call, and
# verification calls this for every event.
_CANONICAL_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> str:
    return _CANONICAL_ENCODER.encode(value)


# An event's hashed attributes: the model's field names, in the order event_content takes them.
HASHED_FIELDS: tuple[str, ...] = (
    "organization_id",
    "sequence",
    "created_at",
    "actor_kind",
    "actor_ref",
    "actor_label",
    "verb",
    "subject_type",
    "subject_id",
    "payload",
    "request_id",
)


def event_content(
    *,
    organization_id: int,
    sequence: int,
    created_at: datetime,
    actor_kind: str,
    actor_ref: str,
    actor_label: str,
    verb: str,
    subject_type: str,
    subject_id: str,
    payload: Any,
    request_id: str,
) -> dict[str, Any]:
    return {
        "org": organization_id,
        "seq": sequence,
        "at": created_at.isoformat(timespec="microseconds"),
        "actor": [actor_kind, actor_ref, actor_label],
        "verb": verb,
        "subject": [subject_type, subject_id],
        "payload": payload,
        "request_id": request_id,
    }


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("utf-8")).hexdigest()
