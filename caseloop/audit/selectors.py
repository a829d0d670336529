"""Reading the audit trail: verifying the chains, exporting them, and listing events for auditors.

Verification recomputes every event's hash from its stored row with the one definition in
:mod:`caseloop.audit.chain`, checks each ``prev_hash`` against the previous event's hash, checks
that sequences run 1, 2, 3… without gaps, and that each organisation's ``AuditChainHead`` names
its last event. Rows are streamed as tuples (``values_list`` + ``iterator``), never as model
instances, so a large trail verifies in seconds and in constant memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import QuerySet, Subquery, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from caseloop.accounts.models import Organization
from caseloop.accounts.permissions import require
from caseloop.audit.chain import GENESIS_HASH, chain_hash, event_content
from caseloop.audit.export import EVENT_FIELDS, event_line, head_line
from caseloop.audit.models import AuditChainHead, AuditEvent

if TYPE_CHECKING:
    from caseloop.accounts.permissions import Actor

DEFAULT_BATCH_SIZE = 5000


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first link of a chain that does not verify."""

    organization: str  # slug
    sequence: int | None
    id: int | None  # the event's primary key, None when the break is a missing event
    expected_hash: str | None
    found_hash: str | None
    reason: str

    def __str__(self) -> str:
        return (
            f"organisation {self.organization}, sequence {self.sequence}, event id {self.id}: {self.reason}\n"
            f"  expected hash {self.expected_hash}\n"
            f"  found hash    {self.found_hash}"
        )


@dataclass(frozen=True, slots=True)
class ChainHead:
    organization: str  # slug
    sequence: int
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int  # events whose hash was recomputed and matched (all of them when ok)
    first_break: ChainBreak | None
    heads: tuple[ChainHead, ...]  # the verified head of each organisation checked

    @property
    def head(self) -> ChainHead | None:
        """The chain head, when exactly one organisation was verified."""
        return self.heads[0] if len(self.heads) == 1 else None


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Read events and heads from one snapshot: a writer committing mid-read must not look like a break.

    On PostgreSQL the outermost block is REPEATABLE READ (one snapshot for all statements); inside a
    caller's transaction we take that transaction as it is. SQLite transactions are serializable.
    """
    connection = transaction.get_connection()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _event_rows(organization: Organization | None, batch_size: int) -> Iterator[tuple]:
    """Event rows as tuples in EVENT_FIELDS order, streamed; ``created_at`` and ``payload`` come as text.

    Text because Django's PostgreSQL timestamp loader is pure Python and took about a third of the
    verification time; the caller decodes with :func:`_utc` and ``json.loads``. Ordered by the unique
    (organization, sequence) index; on PostgreSQL ``iterator`` uses a server-side cursor, so memory
    stays flat.
    """
    events = AuditEvent.objects.all()
    if organization is not None:
        events = events.filter(organization=organization)
    columns = [
        Cast(name, TextField()) if name in ("created_at", "payload") else name for name in EVENT_FIELDS
    ]
    return (
        events.order_by("organization_id", "sequence").values_list(*columns).iterator(chunk_size=batch_size)
    )


def _utc(text: str) -> datetime:
    """A stored timestamp read as text: PostgreSQL's ISO form (``…+00``), or SQLite's naive UTC."""
    # A non-ISO DateStyle makes fromisoformat raise: verification fails loudly, never with a false break.
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC) if moment.utcoffset() else moment


def _heads(organization: Organization | None) -> dict[int, tuple[int, str]]:
    heads = AuditChainHead.objects.all()
    if organization is not None:
        heads = heads.filter(organization=organization)
    return {
        org_id: (sequence, digest) for org_id, sequence, digest in heads.values_list("pk", "sequence", "hash")
    }


def audit_verify(
    *, organization: Organization | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> VerifyResult:
    """Verify one organisation's chain, or every organisation's; stop at the first broken link."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with _one_snapshot():
        slugs = dict(
            (Organization.objects.filter(pk=organization.pk) if organization else Organization.objects.all())
            .order_by()
            .values_list("pk", "slug")
        )
        stored_heads = _heads(organization)
        verified_heads: list[ChainHead] = []
        checked = 0

        def end_of_chain(org_id: int, sequence: int, digest: str, last_id: int | None) -> ChainBreak | None:
            """Compare the chain's last event with the organisation's stored head."""
            slug = slugs.get(org_id, str(org_id))
            stored = stored_heads.pop(org_id, None)
            if stored is None:
                if sequence == 0:
                    return None  # no head row and no events: nothing was ever recorded
                return ChainBreak(
                    slug, sequence, last_id, digest, None, "the organisation has no chain head row"
                )
            if stored != (sequence, digest):
                reason = f"the chain head says #{stored[0]} but the last event is #{sequence}"
                return ChainBreak(slug, sequence, last_id, digest, stored[1], reason)
            verified_heads.append(ChainHead(slug, sequence, digest))
            return None

        def result(first_break: ChainBreak | None) -> VerifyResult:
            return VerifyResult(first_break is None, checked, first_break, tuple(verified_heads))

        current_org: int | None = None
        slug = ""
        last_sequence, last_hash, last_id = 0, GENESIS_HASH, None
        loads, utc = json.loads, _utc
        # The loop body runs once per event: locals only, no attribute lookups, nothing built but the content.
        for (
            event_id,
            org_id,
            sequence,
            created_at,
            actor_kind,
            actor_ref,
            actor_label,
            verb,
            subject_type,
            subject_id,
            payload,
            request_id,
            prev_hash,
            digest,
        ) in _event_rows(organization, batch_size):
            if org_id != current_org:
                if current_org is not None and (
                    broken := end_of_chain(current_org, last_sequence, last_hash, last_id)
                ):
                    return result(broken)
                current_org, last_sequence, last_hash, last_id = org_id, 0, GENESIS_HASH, None
                slug = slugs.get(org_id, str(org_id))
            if sequence != last_sequence + 1:
                reason = f"sequence gap: expected #{last_sequence + 1}"
                return result(ChainBreak(slug, sequence, event_id, last_hash, prev_hash, reason))
            if prev_hash != last_hash:
                reason = f"prev_hash does not link to event #{last_sequence}"
                return result(ChainBreak(slug, sequence, event_id, last_hash, prev_hash, reason))
            content = event_content(
                organization_id=org_id,
                sequence=sequence,
                created_at=utc(created_at),
                actor_kind=actor_kind,
                actor_ref=actor_ref,
                actor_label=actor_label,
                verb=verb,
                subject_type=subject_type,
                subject_id=subject_id,
                payload=loads(payload),
                request_id=request_id,
            )
            expected = chain_hash(prev_hash, content)
            if expected != digest:
                reason = "hash does not match the event's content"
                return result(ChainBreak(slug, sequence, event_id, expected, digest, reason))
            last_sequence, last_hash, last_id = sequence, digest, event_id
            checked += 1
        if current_org is not None and (
            broken := end_of_chain(current_org, last_sequence, last_hash, last_id)
        ):
            return result(broken)
        # Heads of organisations without a single event must still be at the genesis.
        for org_id in sorted(stored_heads):
            if broken := end_of_chain(org_id, 0, GENESIS_HASH, None):
                return result(broken)
        return result(None)


def audit_export_lines(
    *, organization: Organization | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[str]:
    """The JSONL export (see :mod:`caseloop.audit.export`), line by line, without trailing newlines.

    Each organisation's events are followed by its ``chain_head`` line, as the database holds it:
    the export copies what is stored, and the reader's re-verification judges it.
    """
    exported_at = timezone.now()
    with _one_snapshot():
        slugs = dict(
            (Organization.objects.filter(pk=organization.pk) if organization else Organization.objects.all())
            .order_by()
            .values_list("pk", "slug")
        )
        stored_heads = _heads(organization)

        def head_for(org_id: int) -> str:
            sequence, digest = stored_heads.pop(org_id, (0, GENESIS_HASH))
            return head_line(
                organization_id=org_id,
                organization=slugs.get(org_id, str(org_id)),
                sequence=sequence,
                hash=digest,
                exported_at=exported_at,
            )

        current_org: int | None = None
        for row in _event_rows(organization, batch_size):
            event = dict(zip(EVENT_FIELDS, row, strict=True))
            event["created_at"], event["payload"] = _utc(event["created_at"]), json.loads(event["payload"])
            if event["organization_id"] != current_org:
                if current_org is not None:
                    yield head_for(current_org)
                current_org = event["organization_id"]
            yield event_line(event)
        if current_org is not None:
            yield head_for(current_org)
        for org_id in sorted(stored_heads):
            yield head_for(org_id)


def audit_event_list(
    *,
    actor: Actor,
    verb: str | None = None,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The actor's organisation's events, newest first, optionally narrowed. Needs ``audit.view``."""
    require(actor, "audit.view")
    events = AuditEvent.objects.filter(organization=actor.organization)
    if verb:
        events = events.filter(verb=verb)
    if subject_type:
        events = events.filter(subject_type=subject_type)
    if subject_id is not None:
        events = events.filter(subject_id=str(subject_id))
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events.order_by("-sequence")


# --------------------------------------------------------------------------- the auditors' list page
# Keyset pagination over (organization, sequence): a page is "the next N events below (or above)
# this sequence", answered from an index whatever the page's depth; no OFFSET and no COUNT over the
# trail, which stay fast at millions of events.

# Keep in step with migration 0004_explanation_search (the GIN index is on this expression).
EXPLANATION_VECTOR = "to_tsvector('english'::regconfig, COALESCE(payload ->> 'explanation', ''))"
MAX_PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class AuditFilters:
    actor: str = ""  # the actor's label: a username, "api key <prefix>", a policy version, "system"
    verb: str = ""
    subject_type: str = ""
    subject_id: str = ""
    since: date | None = None  # from the start of this day (UTC)
    until: date | None = None  # to the end of this day (UTC)
    search: str = ""  # words in the agents' explanations

    @property
    def active(self) -> bool:
        return any(
            (self.actor, self.verb, self.subject_type, self.subject_id, self.since, self.until, self.search)
        )


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    newer: int | None  # ?after=<this> shows the events just newer than this page; None at the newest
    older: int | None  # ?before=<this> shows the events just older; None at the oldest


def _filtered(actor: Actor, filters: AuditFilters) -> QuerySet[AuditEvent]:
    require(actor, "audit.view")
    events = AuditEvent.objects.filter(organization=actor.organization)
    if filters.actor:
        events = events.filter(actor_label=filters.actor)
    if filters.verb:
        events = events.filter(verb=filters.verb)
    if filters.subject_type:
        events = events.filter(subject_type=filters.subject_type)
    if filters.subject_id:
        events = events.filter(subject_id=filters.subject_id)
    # A date range becomes a sequence range too: events are stamped under their chain's lock, so
    # sequence order is time order, and the page then reads the (organization, sequence) index from
    # the range's end instead of walking back through every newer event. Each bound is one probe of
    # the (organization, created_at) index, run by the database as part of the page's query.
    in_org = AuditEvent.objects.filter(organization=actor.organization)
    if filters.since is not None:
        start = datetime.combine(filters.since, datetime.min.time(), UTC)
        first = in_org.filter(created_at__gte=start).order_by("created_at", "sequence")
        events = events.filter(created_at__gte=start, sequence__gte=Subquery(first.values("sequence")[:1]))
    if filters.until is not None:
        end = datetime.combine(filters.until, datetime.min.time(), UTC) + timedelta(days=1)
        last = in_org.filter(created_at__lt=end).order_by("-created_at", "-sequence")
        events = events.filter(created_at__lt=end, sequence__lte=Subquery(last.values("sequence")[:1]))
    if filters.search:
        if connection.vendor == "postgresql":
            events = events.extra(  # noqa: S610 - fixed SQL; the words are a bound parameter
                where=[f"{EXPLANATION_VECTOR} @@ websearch_to_tsquery('english'::regconfig, %s)"],
                params=[filters.search],
            )
        else:
            events = events.filter(payload__explanation__icontains=filters.search)
    return events


def audit_event_page(
    *,
    actor: Actor,
    filters: AuditFilters = AuditFilters(),
    before: int | None = None,
    after: int | None = None,
    size: int = 50,
    with_payload: bool = True,
) -> AuditPage:
    """One page of the organisation's events matching ``filters``, newest first: the newest ones,
    or those just older than sequence ``before``, or just newer than sequence ``after``. Three
    queries whatever the page size or depth. Needs ``audit.view``.

    Each event carries ``summary``: its payload's explanation (or reason), as text. With
    ``with_payload=False`` the payload itself is left unread (``audit_event_get`` reads one), which
    spares decoding every step's tool results and probabilities for a list."""
    size = max(1, min(size, MAX_PAGE_SIZE))
    events = _filtered(actor, filters).annotate(
        summary=Coalesce(KeyTextTransform("explanation", "payload"), KeyTextTransform("reason", "payload"))
    )
    if not with_payload:
        events = events.defer("payload")
    if after is not None:
        rows = list(events.filter(sequence__gt=after).order_by("sequence")[: size + 1])
        more_newer = len(rows) > size
        page = list(reversed(rows[:size]))
        more_older = bool(page) and events.filter(sequence__lt=page[-1].sequence).exists()
    else:
        scoped = events.filter(sequence__lt=before) if before is not None else events
        rows = list(scoped.order_by("-sequence")[: size + 1])
        more_older = len(rows) > size
        page = rows[:size]
        more_newer = bool(page) and events.filter(sequence__gt=page[0].sequence).exists()
    return AuditPage(
        events=page,
        newer=page[0].sequence if page and more_newer else None,
        older=page[-1].sequence if page and more_older else None,
    )


def audit_chain_length(*, actor: Actor) -> int:
    """How many events the organisation's chain holds, from its head row (one primary-key read)."""
    require(actor, "audit.view")
    return (
        AuditChainHead.objects.filter(organization=actor.organization)
        .values_list("sequence", flat=True)
        .first()
        or 0
    )


def audit_event_get(*, actor: Actor, sequence: int) -> AuditEvent | None:
    """The event at ``sequence`` in the actor's organisation's chain, or None. Needs ``audit.view``."""
    require(actor, "audit.view")
    return AuditEvent.objects.filter(organization=actor.organization, sequence=sequence).first()


def audit_recent_values(*, actor: Actor, field: str, window: int = 2000) -> list[str]:
    """Distinct values of ``field`` (verb, actor_label, subject_type) among the latest ``window``
    events: suggestions for the filters, at a fixed cost whatever the trail's size."""
    require(actor, "audit.view")
    if field not in ("verb", "actor_label", "subject_type"):
        raise ValueError(f"no suggestions for {field!r}")
    recent = AuditEvent.objects.filter(organization=actor.organization).order_by("-sequence")[:window]
    return sorted(set(recent.values_list(field, flat=True)))
