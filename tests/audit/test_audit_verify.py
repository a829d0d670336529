"""Verifying the chain: audit_verify and ``manage.py audit_verify`` name the first broken link exactly."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from caseloop.accounts.models import Organization
from caseloop.accounts.permissions import Actor
from caseloop.audit.chain import chain_hash, event_content
from caseloop.audit.export import EVENT_FIELDS
from caseloop.audit.models import AuditChainHead, AuditEvent
from caseloop.audit.selectors import ChainBreak, audit_verify
from caseloop.audit.services import audit_record
from tests.factories import make_actor

pytestmark = pytest.mark.django_db
HASHED_FIELDS = [name for name in EVENT_FIELDS if name not in ("id", "prev_hash", "hash")]


def _first_break(organization: Organization | None = None) -> ChainBreak:
    result = audit_verify(organization=organization)
    assert result.first_break is not None, "the chain verified"
    assert not result.ok
    return result.first_break


def _chain(actor: Actor, n: int = 5) -> list[AuditEvent]:
    """The organisation's events after recording ``n`` more: #1 is its creation, then #2…#n+1."""
    for i in range(n):
        with transaction.atomic():
            audit_record(actor=actor, verb="test.event", subject=("thing", i), payload={"i": i, "note": "ok"})
    return list(AuditEvent.objects.filter(organization=actor.organization).order_by("sequence"))


def test_an_untouched_chain_verifies_with_its_count_and_head():
    actor = make_actor()
    events = _chain(actor)
    result = audit_verify(organization=actor.organization, batch_size=2)  # several fetches
    assert result.ok and result.first_break is None
    assert result.checked == len(events) == 6
    assert result.head is not None
    assert (result.head.organization, result.head.sequence, result.head.hash) == (
        actor.organization.slug,
        6,
        events[-1].hash,
    )


def test_a_changed_payload_is_named_by_sequence_and_id(tamper):
    actor = make_actor()
    events = _chain(actor)
    target = events[2]
    tamper(target, payload={"i": 1, "note": "rewritten"})

    broken = _first_break(actor.organization)
    assert (broken.organization, broken.sequence, broken.id) == (actor.organization.slug, 3, target.pk)
    assert broken.found_hash == target.hash
    assert broken.expected_hash not in (None, target.hash)
    assert "hash does not match" in broken.reason
    assert audit_verify(organization=actor.organization).checked == 2


def _rehash(event: AuditEvent) -> str:
    fields = {name: getattr(event, name) for name in HASHED_FIELDS}
    return chain_hash(event.prev_hash, event_content(**fields))


def test_a_rehashed_event_breaks_the_link_to_the_next(tamper):
    # An attacker who rewrites an event and recomputes its hash still cannot fix the next event's prev_hash.
    actor = make_actor()
    events = _chain(actor)
    forged = AuditEvent.objects.get(pk=events[2].pk)
    forged.verb = "test.forged"
    tamper(forged, verb=forged.verb, hash=_rehash(forged))

    broken = _first_break(actor.organization)
    assert (broken.sequence, broken.id) == (4, events[3].pk)
    assert "prev_hash does not link to event #3" in broken.reason
    assert (broken.expected_hash, broken.found_hash) == (_rehash(forged), events[2].hash)


def test_a_deleted_event_is_named_as_a_gap(tamper):
    actor = make_actor()
    events = _chain(actor)
    tamper(events[2], delete=True)

    broken = _first_break(actor.organization)
    assert (broken.sequence, broken.id) == (4, events[3].pk)
    assert "sequence gap: expected #3" in broken.reason


def test_removing_the_newest_events_shows_against_the_head(tamper):
    actor = make_actor()
    events = _chain(actor)
    tamper(events[-1], delete=True)

    broken = _first_break(actor.organization)
    assert (broken.sequence, broken.id) == (5, events[-2].pk)
    assert broken.found_hash == events[-1].hash  # what the head still holds
    assert "chain head says #6" in broken.reason


def test_a_head_moved_by_hand_is_named():
    actor = make_actor()
    events = _chain(actor)
    AuditChainHead.objects.filter(organization=actor.organization).update(sequence=99)

    broken = _first_break(actor.organization)
    assert (broken.sequence, broken.id, broken.expected_hash) == (6, events[-1].pk, events[-1].hash)


def test_verifying_every_organisation_names_the_broken_one(tamper):
    sound, damaged = make_actor(), make_actor()
    _chain(sound)
    events = _chain(damaged)
    tamper(events[1], subject_id="elsewhere")

    assert audit_verify(organization=sound.organization).ok
    broken = _first_break()
    assert (broken.organization, broken.sequence) == (damaged.organization.slug, 2)


def test_the_command_prints_ok_with_the_count_and_head():
    actor = make_actor()
    events = _chain(actor, 3)
    out = StringIO()
    call_command("audit_verify", "--org", actor.organization.slug, stdout=out)
    assert "OK: 4 events verified" in out.getvalue()
    assert f"{actor.organization.slug}: chain head #4 {events[-1].hash}" in out.getvalue()


def test_the_command_names_the_broken_link_and_fails(tamper):
    actor = make_actor()
    events = _chain(actor)
    target = events[3]
    tamper(target, payload={"i": 999})

    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", "--org", actor.organization.slug, stdout=StringIO())
    message = str(failure.value)
    assert f"organisation {actor.organization.slug}, sequence 4, event id {target.pk}" in message
    assert f"found hash    {target.hash}" in message
    assert "expected hash " in message


def test_the_command_refuses_an_unknown_organisation():
    with pytest.raises(CommandError, match="No organisation with the slug 'nope'"):
        call_command("audit_verify", "--org", "nope")
