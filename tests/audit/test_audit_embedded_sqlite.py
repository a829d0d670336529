"""The embedded default (SQLite, no services) records a chain, verifies it, exports it, and catches tampering.

Runs ``manage.py`` in child processes with no DATABASE_URL, so it exercises the SQLite code paths even
when the rest of the suite runs on PostgreSQL.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from caseloop.audit.export import verify_export_file

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

RECORD = """
from django.db import transaction
from caseloop.accounts.permissions import Actor
from caseloop.accounts.services import organization_create
from caseloop.audit.services import audit_record

organization = organization_create(name="Embedded", slug="embedded")
actor = Actor.for_system(organization)
for i in range(5):
    with transaction.atomic():
        audit_record(actor=actor, verb="test.embedded", subject=("thing", i), payload={"i": i, "name": "Zoë"})
"""


def _manage(*args: str, var_dir: Path) -> subprocess.CompletedProcess:
    service_settings = {
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CELERY_TASK_ALWAYS_EAGER",
        "SECRET_KEY",
        "DEBUG",
    }
    env = {name: value for name, value in os.environ.items() if name not in service_settings}
    env["CASELOOP_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_embedded_sqlite_default_records_verifies_and_catches_tampering(tmp_path):
    migrated = _manage("migrate", "--noinput", var_dir=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    recorded = _manage("shell", "-c", RECORD, var_dir=tmp_path)
    assert recorded.returncode == 0, recorded.stderr

    verified = _manage("audit_verify", "--org", "embedded", var_dir=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "OK: 6 events verified" in verified.stdout
    exported = _manage(
        "audit_export", "--org", "embedded", "--output", str(tmp_path / "audit.jsonl"), var_dir=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    assert verify_export_file(tmp_path / "audit.jsonl").ok

    # SQLite has no append-only trigger: tampering succeeds, and verification names it.
    with sqlite3.connect(tmp_path / "caseloop.sqlite3") as db:
        (event_id,) = db.execute("SELECT id FROM audit_auditevent WHERE sequence = 4").fetchone()
        db.execute("UPDATE audit_auditevent SET payload = '{\"i\": 99}' WHERE id = ?", (event_id,))
    broken = _manage("audit_verify", var_dir=tmp_path)
    assert broken.returncode != 0
    assert f"organisation embedded, sequence 4, event id {event_id}" in broken.stderr
