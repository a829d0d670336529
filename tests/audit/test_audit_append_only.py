"""On PostgreSQL the database itself refuses to change or remove an audit event, however it is asked."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from caseloop.accounts.permissions import Actor
from caseloop.audit.models import AuditEvent
from caseloop.audit.services import audit_record
from tests.factories import make_actor

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def event() -> AuditEvent:
    actor = make_actor()
    return AuditEvent.objects.filter(organization=actor.organization).latest("sequence")


def _refused(change: Callable[[], object]) -> None:
    # A savepoint, so the test's transaction survives the error and can look at the row afterwards.
    with pytest.raises(DatabaseError, match="audit events are append-only"), transaction.atomic():
        change()


def _raw(sql: str, *params: int) -> Callable[[], None]:
    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params or None)

    return run


def test_orm_updates_are_refused(event):
    _refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(verb="rewritten"))
    event.payload = {"rewritten": True}
    _refused(lambda: event.save(update_fields=["payload"]))
    assert AuditEvent.objects.get(pk=event.pk).verb != "rewritten"


def test_orm_deletes_are_refused(event):
    _refused(lambda: AuditEvent.objects.filter(pk=event.pk).delete())
    _refused(event.delete)
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_raw_sql_updates_and_deletes_are_refused(event):
    _refused(_raw("UPDATE audit_auditevent SET hash = repeat('0', 64) WHERE id = %s", event.pk))
    _refused(_raw("UPDATE audit_auditevent SET payload = '{}'::jsonb"))
    _refused(_raw("DELETE FROM audit_auditevent WHERE id = %s", event.pk))
    _refused(_raw("DELETE FROM audit_auditevent"))
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash


def test_the_refusal_says_what_to_do_instead(event):
    with pytest.raises(DatabaseError) as refused, transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    cause = refused.value.__cause__
    assert isinstance(cause, psycopg.errors.RaiseException)
    assert f"DELETE refused on audit_auditevent, id {event.pk}" in str(cause)
    assert cause.diag.message_hint == "Record a new audit event instead of changing or removing one."


def test_appending_still_works_alongside_the_trigger(event):
    actor = Actor.for_system(event.organization)
    with transaction.atomic():
        appended = audit_record(actor=actor, verb="test.appended", subject=("thing", 1))
    assert appended.sequence == event.sequence + 1
    assert AuditEvent.objects.filter(pk=appended.pk).exists()
