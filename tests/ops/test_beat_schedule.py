"""Celery beat can publish every periodic task of CELERY_BEAT_SCHEDULE.

Publishing checks a task's time limits: a task whose own ``time_limit`` is below the global
``CELERY_TASK_SOFT_TIME_LIMIT`` (and sets no ``soft_time_limit`` of its own) is refused with
"soft_time_limit must be less than or equal to time_limit", and beat only logs "Couldn't apply
scheduled task" every period: the schedule silently never runs. Tests run tasks eagerly, which skips
that check, so this one publishes each scheduled task for real, to a queue nobody consumes.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings

from caseloop.celery import app

pytestmark = pytest.mark.redis


def test_every_scheduled_task_can_be_published_by_beat():
    app.loader.import_default_modules()
    queue = f"beat-check-{uuid.uuid4().hex[:8]}"
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    refused = {}
    try:
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
            task = app.tasks[entry["task"]]
            try:
                task.apply_async(queue=queue)
            except ValueError as exc:
                refused[name] = f"{entry['task']}: {exc}"
    finally:
        app.conf.task_always_eager = eager
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)
    assert settings.CELERY_BEAT_SCHEDULE
    assert not refused, "beat cannot publish:\n" + "\n".join(f"{k}: {v}" for k, v in refused.items())
