"""Writing the chain: audit_record links events by hash, numbers them without gaps, and keeps the head."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction

from caseloop.accounts.models import Organization, Role
from caseloop.accounts.permissions import Actor
from caseloop.audit.chain import GENESIS_HASH, canonical_json, chain_hash, event_content
from caseloop.audit.models import AuditChainHead, AuditEvent
from caseloop.audit.selectors import audit_event_list, audit_verify
from caseloop.audit.services import AuditEntry, audit_deferred, audit_record, audit_record_many
from tests.factories import make_actor

pytestmark = pytest.mark.django_db


def _record(actor: Actor, n: int, verb: str = "test.event") -> list[AuditEvent]:
    events = []
    for i in range(n):
        with transaction.atomic():
            events.append(audit_record(actor=actor, verb=verb, subject=("thing", i), payload={"i": i}))
    return events


def _recomputed_hash(event: AuditEvent) -> str:
    content = event_content(
        organization_id=event.organization_id,
        sequence=event.sequence,
        created_at=event.created_at,
        actor_kind=event.actor_kind,
        actor_ref=event.actor_ref,
        actor_label=event.actor_label,
        verb=event.verb,
        subject_type=event.subject_type,
        subject_id=event.subject_id,
        payload=event.payload,
        request_id=event.request_id,
    )
    return chain_hash(event.prev_hash, content)


def test_the_hash_definition_is_stable():
    # A fixed event and its digest: any change to the canonical form breaks every chain already stored.
    content = event_content(
        organization_id=7,
        sequence=3,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        actor_kind="user",
        actor_ref="42",
        actor_label="zoë",
        verb="case.decided",
        subject_type="workflows.case",
        subject_id="9",
        payload={"b": [1, 2.5, None], "a": {"z": True, "é": "ü"}},
        request_id="req-1",
    )
    assert canonical_json(content) == (
        '{"actor":["user","42","zoë"],"at":"2026-01-02T03:04:05.000006+00:00","org":7,'
        '"payload":{"a":{"z":true,"é":"ü"},"b":[1,2.5,null]},"request_id":"req-1","seq":3,'
        '"subject":["workflows.case","9"],"verb":"case.decided"}'
    )
    assert (
        chain_hash(GENESIS_HASH, content)
        == "759cf30d376caf8441a0340f7ce4962dd27cb4947797f5441be73a03711d6d76"
    )


def test_events_are_numbered_from_one_and_each_links_to_the_one_before():
    actor = make_actor()
    _record(actor, 4)

    # Reloaded from the database: what is stored must hash to what was written.
    events = list(AuditEvent.objects.filter(organization=actor.organization).order_by("sequence"))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].verb == "organization.created"
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in pairwise(events):
        assert after.prev_hash == before.hash
    for event in events:
        assert _recomputed_hash(event) == event.hash
    head = AuditChainHead.objects.get(organization=actor.organization)
    assert (head.sequence, head.hash) == (events[-1].sequence, events[-1].hash)


def test_audit_record_returns_the_stored_event():
    actor = make_actor()
    with transaction.atomic():
        event = audit_record(actor=actor, verb="test.returned", subject=actor.organization, payload={"x": 1})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.sequence, stored.hash, stored.prev_hash) == (event.sequence, event.hash, event.prev_hash)
    assert stored.subject_type == "accounts.organization"
    assert stored.subject_id == str(actor.organization.pk)
    assert (stored.actor_kind, stored.actor_ref, stored.actor_label) == (
        "user",
        str(actor.user.pk),
        actor.label,
    )
    assert event.organization is actor.organization


def test_a_batch_appends_consecutive_events_that_verify_as_stored():
    actor = make_actor()
    _record(actor, 1)
    with transaction.atomic():
        events = audit_record_many(
            actor=actor,
            entries=[
                AuditEntry("test.batched", ("thing", i), {"i": i, "amount": 1234.5 + i}) for i in range(4)
            ],
        )
        audit_record(actor=actor, verb="test.after", subject=("thing", 9))
    assert [e.sequence for e in events] == [3, 4, 5, 6]
    stored = {e.pk: e for e in AuditEvent.objects.filter(organization=actor.organization)}
    for event in events:  # each returned event is its stored row
        row = stored[event.pk]
        assert (row.sequence, row.hash, row.prev_hash, row.payload) == (
            event.sequence,
            event.hash,
            event.prev_hash,
            event.payload,
        )
        assert _recomputed_hash(row) == row.hash
    by_sequence = sorted(stored.values(), key=lambda e: e.sequence)
    assert events[0].prev_hash == by_sequence[1].hash  # extends the event before the batch
    assert [e.verb for e in by_sequence][-6:] == [
        "test.event",
        *["test.batched"] * 4,
        "test.after",
    ]
    head = AuditChainHead.objects.get(organization=actor.organization)
    assert head.sequence == 7
    assert audit_verify(organization=actor.organization).ok
    with transaction.atomic():
        assert audit_record_many(actor=actor, entries=[]) == []
    assert AuditChainHead.objects.get(organization=actor.organization).sequence == 7


def test_a_batch_larger_than_one_statement_takes_is_appended_in_parts_that_chain():
    actor = make_actor()
    with transaction.atomic():
        events = audit_record_many(
            actor=actor, entries=[AuditEntry("test.many", ("thing", i), {"i": i}) for i in range(1201)]
        )
    assert [e.sequence for e in events] == list(range(2, 1203))
    assert AuditEvent.objects.filter(organization=actor.organization, verb="test.many").count() == 1201
    assert AuditChainHead.objects.get(organization=actor.organization).sequence == 1202
    assert audit_verify(organization=actor.organization).ok


def test_a_batch_rolled_back_in_a_savepoint_leaves_no_gap():
    actor = make_actor()
    with transaction.atomic():
        audit_record(actor=actor, verb="test.kept", subject=("thing", 0))
        with pytest.raises(RuntimeError, match="the change failed"), transaction.atomic():
            audit_record_many(actor=actor, entries=[AuditEntry("test.lost", ("thing", i)) for i in range(3)])
            raise RuntimeError("the change failed")
        audit_record(actor=actor, verb="test.kept", subject=("thing", 1))
    assert not AuditEvent.objects.filter(verb="test.lost").exists()
    assert list(
        AuditEvent.objects.filter(organization=actor.organization)
        .order_by("sequence")
        .values_list("verb", flat=True)
    )[-2:] == ["test.kept", "test.kept"]
    assert audit_verify(organization=actor.organization).ok


def test_deferred_events_are_appended_in_order_when_the_block_ends_without_rolled_back_ones():
    actor, other = make_actor(), make_actor()
    _record(actor, 1)
    with transaction.atomic():
        with audit_deferred():
            first = audit_record(actor=actor, verb="test.deferred", subject=("thing", 1))
            assert first.pk is None and first.sequence is None  # buffered, not yet in the chain
            assert AuditChainHead.objects.get(organization=actor.organization).sequence == 2
            with pytest.raises(RuntimeError, match="the change failed"), transaction.atomic():
                audit_record(actor=actor, verb="test.lost", subject=("thing", 2))
                raise RuntimeError("the change failed")
            with audit_deferred():  # nested: the outer block appends
                audit_record_many(
                    actor=actor, entries=[AuditEntry("test.deferred", ("thing", i)) for i in (3, 4)]
                )
            audit_record(actor=other, verb="test.other", subject=("thing", 5))
            with transaction.atomic():  # a released savepoint keeps its events
                audit_record(actor=actor, verb="test.deferred", subject=("thing", 6))
        assert first.sequence == 3 and first.pk is not None
    ours = list(AuditEvent.objects.filter(organization=actor.organization).order_by("sequence"))
    assert [(e.verb, e.subject_id) for e in ours][-4:] == [
        ("test.deferred", "1"),
        ("test.deferred", "3"),
        ("test.deferred", "4"),
        ("test.deferred", "6"),
    ]
    assert [e.sequence for e in ours] == list(range(1, len(ours) + 1))
    assert not AuditEvent.objects.filter(verb="test.lost").exists()
    assert AuditEvent.objects.get(organization=other.organization, verb="test.other").sequence == 2
    assert audit_verify().ok


def test_deferred_events_of_a_failed_block_are_not_appended():
    actor = make_actor()
    with pytest.raises(RuntimeError, match="the change failed"), transaction.atomic(), audit_deferred():
        audit_record(actor=actor, verb="test.lost", subject=("thing", 1))
        raise RuntimeError("the change failed")
    with transaction.atomic(), audit_deferred():
        audit_record(actor=actor, verb="test.kept", subject=("thing", 2))
    # An error caught inside the transaction keeps the block's changes, so it keeps their events.
    with transaction.atomic(), pytest.raises(RuntimeError, match="caught"), audit_deferred():
        audit_record(actor=actor, verb="test.kept", subject=("thing", 3))
        raise RuntimeError("caught")
    assert not AuditEvent.objects.filter(verb="test.lost").exists()
    assert list(AuditEvent.objects.filter(verb="test.kept").values_list("sequence", flat=True)) == [2, 3]
    assert audit_verify(organization=actor.organization).ok


def test_chains_of_organisations_are_independent():
    first, second = make_actor(), make_actor()
    _record(first, 3)
    _record(second, 2)
    assert list(
        AuditEvent.objects.filter(organization=second.organization).values_list("sequence", flat=True)
    ) == [1, 2, 3]
    assert audit_verify().ok


def test_payload_values_are_hashed_as_they_are_stored():
    actor = make_actor()
    with transaction.atomic():
        event = audit_record(
            actor=actor,
            verb="test.values",
            subject=("thing", 1),
            payload={"amount": Decimal("12.50"), "due": date(2026, 3, 1), "name": "Zoë ✓", "ratio": 0.1},
        )
    assert AuditEvent.objects.get(pk=event.pk).payload == {
        "amount": "12.50",
        "due": "2026-03-01",
        "name": "Zoë ✓",
        "ratio": 0.1,
    }
    assert audit_verify(organization=actor.organization).ok


def test_numbers_the_database_rewrites_still_verify():
    # PostgreSQL's jsonb has no -0 and writes 1e+16 as 10000000000000000 (an int once read back), so
    # these must be hashed as they will be stored, or an intact chain would look broken.
    actor = make_actor()
    payload = {
        "negative_zero": -0.0,
        "huge": 1e16,
        "huger": [-1.2345678901234567e20],
        "tiny": 1.5e-7,
        "plain": 0.1,
    }
    with transaction.atomic():
        event = audit_record(actor=actor, verb="test.numbers", subject=("thing", 1), payload=payload)
    assert event.payload == AuditEvent.objects.get(pk=event.pk).payload
    assert audit_verify(organization=actor.organization).ok


def test_an_event_rolled_back_with_its_change_leaves_no_gap():
    actor = make_actor()
    _record(actor, 1)
    with pytest.raises(RuntimeError, match="the change failed"), transaction.atomic():
        audit_record(actor=actor, verb="test.lost", subject=("thing", 1))
        raise RuntimeError("the change failed")
    _record(actor, 1)
    assert not AuditEvent.objects.filter(verb="test.lost").exists()
    assert list(
        AuditEvent.objects.filter(organization=actor.organization).values_list("sequence", flat=True)
    ) == [
        1,
        2,
        3,
    ]
    assert audit_verify(organization=actor.organization).ok


def test_the_first_event_of_an_organisation_without_a_head_row_creates_it():
    organization = Organization.objects.create(name="Made without the service", slug="no-head")
    with transaction.atomic():
        event = audit_record(actor=Actor.for_system(organization), verb="test.first", subject=("thing", 1))
    assert (event.sequence, event.prev_hash) == (1, GENESIS_HASH)
    head = AuditChainHead.objects.get(organization=organization)
    assert (head.sequence, head.hash) == (1, event.hash)
    assert audit_verify(organization=organization).ok


@pytest.mark.django_db(transaction=True)
def test_audit_record_outside_a_transaction_is_refused_and_writes_nothing():
    actor = make_actor()
    before = AuditEvent.objects.count()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(actor=actor, verb="test.outside", subject=("thing", 1))
    assert AuditEvent.objects.count() == before


def test_auditors_list_their_organisations_events_newest_first():
    admin = make_actor()
    auditor = make_actor(admin.organization, role=Role.AUDITOR)
    _record(admin, 3, verb="test.listed")
    _record(make_actor(), 2, verb="test.listed")  # another organisation's

    listed = list(audit_event_list(actor=auditor, verb="test.listed"))
    assert [e.sequence for e in listed] == [4, 3, 2]
    assert {e.organization_id for e in listed} == {admin.organization.pk}
    assert [e.subject_id for e in audit_event_list(actor=auditor, subject_type="thing", subject_id=1)] == [
        "1"
    ]


def test_reviewers_may_not_list_audit_events():
    reviewer = make_actor(role=Role.REVIEWER)
    with pytest.raises(PermissionDenied):
        audit_event_list(actor=reviewer)
