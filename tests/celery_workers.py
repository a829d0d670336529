"""Real Celery worker processes for tests, against the test database and the real Redis broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


def start_worker(queue: str, name: str, *, output: int | None = subprocess.DEVNULL) -> subprocess.Popen:
    """``celery worker -Q queue --pool solo`` with the test database; the caller stops it."""
    env = dict(
        os.environ,
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_TASK_ALWAYS_EAGER="0",
    )
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "caseloop",
        "worker",
        "-Q",
        queue,
        "--pool",
        "solo",
        "-n",
        f"{name}-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        text=True,
    )


def stop_worker(worker: subprocess.Popen | None) -> None:
    """Kill it: a warm shutdown would wait for a running task to finish."""
    if worker is not None and worker.poll() is None:
        worker.kill()
        worker.wait(timeout=20)
