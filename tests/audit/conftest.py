"""Audit trail test fixtures: tampering with stored rows as an attacker with database access would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

from caseloop.audit.models import AuditEvent

TRIGGER = "audit_event_append_only"


@contextmanager
def append_only_trigger_disabled() -> Iterator[None]:
    """Switch PostgreSQL's append-only trigger off inside the test's transaction (SQLite has none)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        # ALTER TABLE refuses while deferred foreign-key checks are pending on the table: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE audit_auditevent DISABLE TRIGGER {TRIGGER}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE audit_auditevent ENABLE TRIGGER {TRIGGER}")


@pytest.fixture
def tamper() -> Callable[..., None]:
    """``tamper(event, **fields)`` overwrites stored fields of one event; ``delete=True`` removes it."""

    def tamper(event: AuditEvent, *, delete: bool = False, **fields: Any) -> None:
        rows = AuditEvent.objects.filter(pk=event.pk)
        with append_only_trigger_disabled():
            changed = rows.delete()[0] if delete else rows.update(**fields)
        assert changed == 1

    return tamper
