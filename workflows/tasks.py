"""Celery tasks for live cases. Thin: ids in, one service call."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import ChannelError

from caseloop.celery import app
from workflows.services.runs import case_decide, cases_requeue_lost, cases_requeue_waiting


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=300,
    soft_time_limit=270,
    # A database restart mid-decision rolls the attempt back; try again once it is back.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
)
def decide_case(case_id: int) -> int | None:
    decision = case_decide(case_id=case_id)
    return decision.pk if decision else None


@shared_task(time_limit=120, soft_time_limit=110)
def requeue_waiting_cases() -> list[int]:
    """Cases waiting for their model server go back to the queue once it answers (Celery beat)."""
    return cases_requeue_waiting()


def _decisions_queue_length() -> int | None:
    """Messages waiting in the ``decisions`` queue, or None when the broker cannot say."""
    try:
        with app.connection_for_read() as connection:
            return connection.default_channel.queue_declare("decisions", passive=True).message_count
    except ChannelError:
        # Redis deletes a list once its last item is popped, so an empty queue does not exist for
        # a passive declare: nothing waits in it.
        return 0
    except Exception:
        return None


@shared_task(time_limit=120, soft_time_limit=110)
def requeue_lost_cases() -> list[int]:
    """Live cases whose decide task was lost go back to the queue (Celery beat). Only while the
    ``decisions`` queue is empty: a backlog means their tasks are still on their way."""
    if _decisions_queue_length() != 0:
        return []
    return cases_requeue_lost()
