"""Celery tasks for live cases. Thin: ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from workflows.services.runs import case_decide, cases_requeue_waiting


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=300, soft_time_limit=270)
def decide_case(case_id: int) -> int | None:
    decision = case_decide(case_id=case_id)
    return decision.pk if decision else None


@shared_task(time_limit=120)
def requeue_waiting_cases() -> list[int]:
    """Cases waiting for their model server go back to the queue once it answers (Celery beat)."""
    return cases_requeue_waiting()
