"""The quickstart on the embedded default: SQLite, tasks eagerly in-process, no services needed."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _manage(*args: str, var_dir: Path) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "CELERY_TASK_ALWAYS_EAGER", "DEBUG"}
    }
    env["CASELOOP_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_quickstart_builds_the_demo_on_sqlite_and_is_idempotent(tmp_path):
    assert _manage("migrate", "--noinput", var_dir=tmp_path).returncode == 0
    first = _manage("quickstart", "--cases", "200", "--live", "12", "--train-updates", "3", var_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "12 live cases, 12 decided" in first.stdout
    for role in ("admin", "expert", "reviewer", "auditor"):
        assert re.search(rf"^\s+{role}\s+{role}@acme$", first.stdout, re.M)

    assert "Evaluation of PPO policy v1 on 30 validation cases" in first.stdout
    assert "reference_solver" in first.stdout

    second = _manage("quickstart", "--cases", "200", "--live", "12", "--train-updates", "3", var_dir=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "12 live cases, 12 decided" in second.stdout
    assert "Generated" not in second.stdout and "Submitted" not in second.stdout
    assert "Training" not in second.stdout

    db = sqlite3.connect(tmp_path / "caseloop.sqlite3")
    splits = dict(db.execute("select split, count(*) from workflows_case group by split").fetchall())
    assert splits == {"train": 140, "validation": 30, "test": 30, "live": 12}
    agent_events = db.execute("select count(*) from audit_auditevent where verb like 'agent.%'").fetchone()[0]
    steps = db.execute("select count(*) from workflows_step").fetchone()[0]
    assert agent_events == steps > 12
    jobs = db.execute("select status, count(*) from training_trainingjob group by status").fetchall()
    assert jobs == [("succeeded", 1)]

    verify = _manage("audit_verify", var_dir=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
