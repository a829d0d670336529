"""The API on the embedded default (SQLite, tasks in-process, throttle counters in process memory):
a sync decision, a queued case decided eagerly, idempotent replay, the error shape and 429.

Runs ``manage.py shell`` in a child process without DATABASE_URL, so the SQLite code paths run
even when the rest of the suite runs on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SCRIPT = """
from django.conf import settings
from django.test import Client
from caseloop.accounts.models import Role
from caseloop.accounts.permissions import SCOPES
from caseloop.accounts.services import api_key_create
from tests.factories import live_case_fields, make_actor, make_claims_workflow, make_organization

assert settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
assert settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")
admin = make_actor(make_organization("Embedded"), Role.ADMIN)
workflow, _ = make_claims_workflow(admin)
_, secret = api_key_create(actor=admin, name="embedded", scopes=list(SCOPES))
client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
fields = live_case_fields(workflow, count=2)
body = {"workflow": workflow.pk, "fields": fields[0]}
JSON = "application/json"
first = client.post("/api/v1/cases?decide=sync", body, content_type=JSON, HTTP_IDEMPOTENCY_KEY="k")
again = client.post("/api/v1/cases?decide=sync", body, content_type=JSON, HTTP_IDEMPOTENCY_KEY="k")
assert first.status_code == 201 and first.json()["decision"]["status"] == "pending_review", first.content
assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
queued = client.post("/api/v1/cases", {"workflow": workflow.pk, "fields": fields[1]}, content_type=JSON)
assert queued.status_code == 201 and queued.json()["status"] == "queued"
# the task ran in-process on commit
assert client.get(f"/api/v1/cases/{queued.json()['id']}").json()["decision"] is not None
other = client.post("/api/v1/cases", body, content_type=JSON, HTTP_IDEMPOTENCY_KEY="k")
assert other.status_code == 409 and other.json()["type"] == "conflict", other.content
missing = client.get("/api/v1/cases/999999")
assert missing.status_code == 404 and set(missing.json()) == {"type", "detail", "errors"}
assert client.get("/api/v1/audit/verify").json()["ok"] is True
print("EMBEDDED API OK")
"""


def test_the_api_on_the_embedded_sqlite_default(tmp_path):
    service_settings = {
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CELERY_TASK_ALWAYS_EAGER",
        "SECRET_KEY",
        "DEBUG",
    }
    env = {name: value for name, value in os.environ.items() if name not in service_settings}
    env.update(CASELOOP_VAR_DIR=str(tmp_path), ARTIFACT_DIR=str(tmp_path / "artifacts"))

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    migrated = manage("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    ran = manage("shell", "-c", SCRIPT)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "EMBEDDED API OK" in ran.stdout
