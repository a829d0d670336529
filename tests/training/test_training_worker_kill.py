"""Kill a real ``training`` worker mid-job; another worker resumes the job from its last checkpoint
and finishes it."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings

from caseloop.audit.models import AuditEvent
from caseloop.celery import app as celery_app
from tests.celery_workers import start_worker, stop_worker
from tests.factories import make_actor, make_claims_workflow
from training.models import JobStatus, TrainingJob
from training.rl.checkpoint import latest_checkpoint
from training.services.jobs import training_job_launch, training_jobs_requeue_stale

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

CONFIG = {
    "ppo": {
        "total_updates": 40,
        "num_envs": 16,
        "rollout_steps": 8,
        "minibatches": 4,
        "fit_cases": 64,
        "checkpoint_every": 4,
        "hidden_size": 32,
    },
    "evaluate_limit": 10,
}


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def test_a_killed_training_worker_is_replaced_and_the_job_resumes_from_its_checkpoint():
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor, cases=120)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    first = start_worker("training", "first")
    second = None
    try:
        job = training_job_launch(actor=actor, workflow=workflow, config=CONFIG)

        def checkpointed():
            fresh = TrainingJob.objects.get(pk=job.pk)
            found = latest_checkpoint(fresh.checkpoint_dir) if Path(fresh.checkpoint_dir).exists() else None
            return found if found is not None and fresh.update < fresh.total_updates else None

        checkpoint = _wait(checkpointed, 120, "the first checkpoint")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = TrainingJob.objects.get(pk=job.pk)
        assert killed_at.status == JobStatus.RUNNING  # nobody finished it
        assert killed_at.update < CONFIG["ppo"]["total_updates"]

        second = start_worker("training", "second")
        assert training_jobs_requeue_stale(stale_after=timedelta(0)) == [job.pk]
        finished = _wait(
            lambda: (
                (j := TrainingJob.objects.get(pk=job.pk)).status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
                and j
            ),
            240,
            "the resumed job to finish",
        )
        assert finished.status == JobStatus.SUCCEEDED, finished.error
        assert finished.attempts == 2
        resumed = AuditEvent.objects.get(verb="training_job.resumed", subject_id=str(job.pk))
        assert resumed.payload["from_update"] >= checkpoint.update
        updates = list(finished.metric_points.values_list("update", flat=True))
        assert updates == list(range(1, CONFIG["ppo"]["total_updates"] + 1))
        assert finished.result_version is not None
    finally:
        celery_app.conf.task_always_eager = eager
        stop_worker(first)
        stop_worker(second)
