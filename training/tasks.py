"""Celery tasks for training. Thin: ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from training.services.jobs import training_job_run, training_jobs_requeue_stale


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def run_training_job(job_id: int) -> str | None:
    job = training_job_run(job_id=job_id)
    return job.status if job else None


@shared_task(time_limit=120, soft_time_limit=110)
def requeue_stale_training_jobs() -> list[int]:
    return training_jobs_requeue_stale()
