"""The Celery application and its queues.

Queues: ``decisions`` (live cases, latency-sensitive), ``training`` (long torch jobs) and
``default`` (everything else). Routing lives here so a worker's ``-Q`` flag is all an operator sets.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caseloop.settings")

app = Celery("caseloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("decisions"), Queue("training"), Queue("default"))
app.conf.task_routes = {
    "workflows.tasks.decide_case": {"queue": "decisions"},
    "training.tasks.run_training_job": {"queue": "training"},
    # webhooks: deliveries, their fan-out and the sweeper
    "caseloop.webhooks.tasks.*": {"queue": "default"},
}
app.autodiscover_tasks()

# --- operations: a task queued during a request carries the request's id (caseloop/observability.py) ---
from caseloop.observability import connect_celery_signals  # noqa: E402

connect_celery_signals()
# --- end operations ---
