"""Writing to the audit trail. Every state-changing service calls :func:`audit_record` inside its
own transaction, so the change and its event commit or roll back together."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from caseloop.audit.chain import HASHED_FIELDS, canonical_json, chain_hash, event_content
from caseloop.audit.models import AuditChainHead, AuditEvent
from caseloop.observability import current_request_id

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from caseloop.accounts.permissions import Actor

# PostgreSQL: insert the events and move the head in one statement, one round trip however many
# events a change records. The WHERE re-checks the head we locked, so the events are inserted only
# if they extend that head. The casts type the VALUES rows whatever way the driver binds parameters.
_APPEND_SQL = """
WITH moved AS (
    UPDATE audit_auditchainhead SET sequence = %(sequence)s, hash = %(hash)s
    WHERE organization_id = %(organization_id)s AND sequence = %(prev_sequence)s AND hash = %(prev_hash)s
    RETURNING organization_id
)
INSERT INTO audit_auditevent (
    organization_id, sequence, created_at, actor_kind, actor_ref, actor_label, verb,
    subject_type, subject_id, payload, request_id, prev_hash, hash
)
SELECT moved.organization_id, e.sequence::bigint, e.created_at::timestamptz, e.actor_kind, e.actor_ref,
    e.actor_label, e.verb, e.subject_type, e.subject_id, e.payload::jsonb, e.request_id, e.prev_hash, e.hash
FROM moved, (VALUES {rows}) AS e(
    sequence, created_at, actor_kind, actor_ref, actor_label, verb, subject_type, subject_id, payload,
    request_id, prev_hash, hash
)
RETURNING id, sequence
"""
# The event's attributes in the order of the VALUES rows; payload goes as canonical JSON text.
_ROW_FIELDS = (*(name for name in HASHED_FIELDS if name != "organization_id"), "prev_hash", "hash")
_ROW_SQL = "(" + ", ".join(f"%({{i}}_{name})s" for name in _ROW_FIELDS) + ")"


def _number_as_stored(text: str) -> float | int:
    """A JSON float as PostgreSQL's jsonb hands it back: no -0, and 1e+16 written out as an integer."""
    if "e+" in text:  # Python writes floats of 1e16 and more with an exponent, and all of them are integral
        return int(Decimal(text))
    value = float(text)
    return 0.0 if value == 0 else value


def _jsonable(payload: Any) -> Any:
    # Decimals, dates and UUIDs become strings, and floats take the form the database will return,
    # once, here, so the stored payload and the hashed one agree on every backend.
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder), parse_float=_number_as_stored)


def _locked_head(connection: BaseDatabaseWrapper, organization_id: int) -> tuple[int, str]:
    """Lock the organisation's chain head row and return its (sequence, hash); create it on first use.

    Raw SQL because this runs for every audited change and compiling the ORM query cost more than the
    database's work (bench/audit_throughput.py). SQLite has no row locks: there the IMMEDIATE
    transaction (see settings) already holds the database's write lock.
    """
    sql = "SELECT sequence, hash FROM audit_auditchainhead WHERE organization_id = %s"
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [organization_id])
        head = cursor.fetchone()
        if head is None:
            # Two first writers may race here: ignore_conflicts lets both go on to lock the one row.
            AuditChainHead.objects.bulk_create(
                [AuditChainHead(organization_id=organization_id)], ignore_conflicts=True
            )
            cursor.execute(sql, [organization_id])
            head = cursor.fetchone()
    return head[0], head[1]


def _append(connection: BaseDatabaseWrapper, events: list[AuditEvent], prev_sequence: int) -> None:
    """Insert ``events`` (consecutive, extending the locked head) and move the head to the last one."""
    first, last = events[0], events[-1]
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_create(events)
        AuditChainHead.objects.filter(pk=last.organization_id).update(sequence=last.sequence, hash=last.hash)
        return
    params: dict[str, Any] = {
        "organization_id": last.organization_id,
        "sequence": last.sequence,
        "hash": last.hash,
        "prev_sequence": prev_sequence,
        "prev_hash": first.prev_hash,
    }
    for i, event in enumerate(events):
        for name in _ROW_FIELDS:
            value = getattr(event, name)
            params[f"{i}_{name}"] = canonical_json(value) if name == "payload" else value
    sql = _APPEND_SQL.format(rows=", ".join(_ROW_SQL.format(i=i) for i in range(len(events))))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = {sequence: pk for pk, sequence in cursor.fetchall()}
    if len(ids) != len(events):
        # Cannot happen while we hold the head's lock; refuse rather than fork the chain if it ever does.
        raise RuntimeError(
            f"the audit chain head of organisation {last.organization_id} moved under its lock"
        )
    for event in events:
        event.pk = ids[event.sequence]
        event._state.adding = False
        event._state.db = connection.alias


@dataclass(frozen=True)
class AuditEntry:
    """One event to record: what was done (``verb``), to what (a model instance or a (type, id)
    pair), and its details."""

    verb: str
    subject: models.Model | tuple[str, str | int]
    payload: dict[str, Any] | None = None


def audit_record(
    *,
    actor: Actor,
    verb: str,
    subject: models.Model | tuple[str, str | int],
    payload: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Append one event to the actor's organisation's chain. Must run inside the caller's transaction.

    ``request_id`` defaults to the id of the request being handled, or of the request that queued the
    task being run (caseloop/observability.py), so the trail links each event to its request."""
    return audit_record_many(
        actor=actor, entries=[AuditEntry(verb, subject, payload)], request_id=request_id
    )[0]


def audit_record_many(
    *, actor: Actor, entries: Sequence[AuditEntry], request_id: str | None = None
) -> list[AuditEvent]:
    """Append consecutive events by one actor (e.g. every step of an episode) in one go.

    Two statements however many events: lock the head (SELECT … FOR UPDATE), then insert the events
    and move the head. The lock serialises writers of one organisation, so its chain can neither
    fork nor gap; it is held until the caller's transaction ends. Inside :func:`audit_deferred` the
    events are only buffered, and appended (numbered, hashed, stored) when that block ends.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction that makes the change")
    if not entries:
        return []
    request_id = current_request_id() if request_id is None else request_id
    events = [_event(actor, entry, request_id) for entry in entries]
    buffer = getattr(connection, _BUFFER, None)
    if buffer is None:
        _chain(connection, actor.organization.pk, events)
    else:
        # Django forgets an on-commit callback registered inside a savepoint that rolls back: the
        # marker tells the flush whether these events' savepoint survived.
        marker = _Marker()
        transaction.on_commit(marker, using=connection.alias)
        buffer.append((marker, events))
    return events


@contextmanager
def audit_deferred() -> Iterator[None]:
    """Buffer the audit events recorded in this block and append them all when it ends, still
    inside the caller's transaction: the organisation's chain head is then locked from the end of
    the block to the commit instead of from the first event on, so long audited units of work
    (a live decision) of one organisation no longer run one at a time.

    Events recorded inside a savepoint that rolls back are dropped, as they would have been rolled
    back; events are numbered and timestamped when appended, in the order they were recorded.
    Nested blocks leave the appending to the outermost. Until then a recorded event has no
    sequence, hash or primary key, so use it only where no caller reads those.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("audit_deferred must be used inside the transaction that makes the change")
    if getattr(connection, _BUFFER, None) is not None:
        yield
        return
    buffer: list[tuple[_Marker, list[AuditEvent]]] = []
    setattr(connection, _BUFFER, buffer)
    try:
        yield
    finally:
        setattr(connection, _BUFFER, None)
        # Also when the block raised: a caller that catches the error and commits keeps the block's
        # changes, so it keeps their events too, as without deferral; an enclosing savepoint or
        # transaction that rolls back takes the appended events with it.
        if not connection.needs_rollback:
            _flush(connection, buffer)


def _flush(connection: BaseDatabaseWrapper, buffer: list[tuple[_Marker, list[AuditEvent]]]) -> None:
    alive = {id(func) for _, func, _ in connection.run_on_commit}
    connection.run_on_commit = [c for c in connection.run_on_commit if not isinstance(c[1], _Marker)]
    by_organization: dict[int, list[AuditEvent]] = {}
    for marker, events in buffer:
        if id(marker) in alive:
            by_organization.setdefault(events[0].organization_id, []).extend(events)
    for organization_id in sorted(by_organization):  # one lock order: no deadlock between flushes
        _chain(connection, organization_id, by_organization[organization_id])


class _Marker:
    def __call__(self) -> None:
        pass


_BUFFER = "caseloop_audit_buffer"  # the deferred events of a connection's transaction, if any


def _event(actor: Actor, entry: AuditEntry, request_id: str) -> AuditEvent:
    """The event of ``entry``, not yet numbered, timestamped or hashed."""
    subject = entry.subject
    if isinstance(subject, models.Model):
        subject_type, subject_id = subject._meta.label_lower, str(subject.pk)
    else:
        subject_type, subject_id = subject[0], str(subject[1])
    event = AuditEvent(
        organization_id=actor.organization.pk,
        actor_kind=actor.kind,
        actor_ref=actor.ref,
        actor_label=actor.label,
        verb=entry.verb,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=_jsonable(entry.payload or {}),
        request_id=request_id,
    )
    event.organization = actor.organization  # the actor's instance: no fetch when a caller reads it
    return event


def _chain(connection: BaseDatabaseWrapper, organization_id: int, events: list[AuditEvent]) -> None:
    """Number, timestamp and hash ``events`` after the organisation's locked head, and append them."""
    prev_sequence, head = _locked_head(connection, organization_id)
    now = timezone.now()
    for sequence, event in enumerate(events, start=prev_sequence + 1):
        event.sequence, event.created_at, event.prev_hash = sequence, now, head
        # The keyword arguments of event_content are the model's field names.
        event.hash = head = chain_hash(head, event_content(**{f: getattr(event, f) for f in HASHED_FIELDS}))
    for start in range(0, len(events), _APPEND_BATCH):  # bounded statements (parameters) per append
        _append(connection, events[start : start + _APPEND_BATCH], prev_sequence + start)


_APPEND_BATCH = 500
