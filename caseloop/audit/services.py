"""Writing to the audit trail. Every state-changing service calls :func:`audit_record` inside its
own transaction, so the change and its event commit or roll back together."""

from __future__ import annotations

import json
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

# PostgreSQL: insert the event and move the head in one statement, one round trip instead of two.
# The WHERE re-checks the head we locked, so the event is inserted only if it extends that head.
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
SELECT organization_id, %(sequence)s, %(created_at)s, %(actor_kind)s, %(actor_ref)s, %(actor_label)s,
    %(verb)s, %(subject_type)s, %(subject_id)s, %(payload)s::jsonb, %(request_id)s, %(prev_hash)s, %(hash)s
FROM moved
RETURNING id
"""
# The event's attributes passed to _APPEND_SQL as they are; payload goes as canonical JSON text.
_APPEND_FIELDS = (*(name for name in HASHED_FIELDS if name != "payload"), "prev_hash", "hash")


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


def _append(connection: BaseDatabaseWrapper, event: AuditEvent, prev_sequence: int) -> None:
    """Insert ``event`` and move its organisation's head to it."""
    if connection.vendor != "postgresql":
        event.save(force_insert=True)
        AuditChainHead.objects.filter(pk=event.organization_id).update(
            sequence=event.sequence, hash=event.hash
        )
        return
    params = {name: getattr(event, name) for name in _APPEND_FIELDS}
    params["payload"] = canonical_json(event.payload)
    params["prev_sequence"] = prev_sequence
    with connection.cursor() as cursor:
        cursor.execute(_APPEND_SQL, params)
        row = cursor.fetchone()
    if row is None:
        # Cannot happen while we hold the head's lock; refuse rather than fork the chain if it ever does.
        raise RuntimeError(
            f"the audit chain head of organisation {event.organization_id} moved under its lock"
        )
    event.pk = row[0]
    event._state.adding = False
    event._state.db = connection.alias


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
    task being run (caseloop/observability.py), so the trail links each event to its request.

    Two statements: lock the head (SELECT … FOR UPDATE), then insert the event and move the head.
    The lock serialises writers of one organisation, so its chain can neither fork nor gap.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction that makes the change")
    if isinstance(subject, models.Model):
        subject_type, subject_id = subject._meta.label_lower, str(subject.pk)
    else:
        subject_type, subject_id = subject[0], str(subject[1])
    organization = actor.organization
    prev_sequence, prev_hash = _locked_head(connection, organization.pk)
    # The keyword arguments of event_content are the model's field names, so one dict serves both.
    fields: dict[str, Any] = {
        "organization_id": organization.pk,
        "sequence": prev_sequence + 1,
        "created_at": timezone.now(),
        "actor_kind": actor.kind,
        "actor_ref": actor.ref,
        "actor_label": actor.label,
        "verb": verb,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "payload": _jsonable(payload or {}),
        "request_id": current_request_id() if request_id is None else request_id,
    }
    digest = chain_hash(prev_hash, event_content(**fields))
    event = AuditEvent(**fields, prev_hash=prev_hash, hash=digest)
    event.organization = organization  # the actor's instance: no fetch when a caller reads event.organization
    _append(connection, event, prev_sequence)
    return event
