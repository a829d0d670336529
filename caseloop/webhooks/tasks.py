"""Celery tasks for webhooks, on the ``default`` queue. Thin: ids in, one service call."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from caseloop.webhooks.services import deliveries_enqueue, webhook_deliveries_sweep, webhook_delivery_send

# A send is bounded by the HTTP timeout (connect, write, read); the limit leaves room for the rest.
_SEND_LIMIT_S = 3 * settings.WEBHOOK_TIMEOUT_S + 30


@shared_task(
    acks_late=True, reject_on_worker_lost=True, time_limit=_SEND_LIMIT_S + 10, soft_time_limit=_SEND_LIMIT_S
)
def deliver_webhook(delivery_pk: int) -> str | None:
    """Make one pending attempt; safe to run twice (the attempt is claimed with a compare-and-swap)."""
    delivery = webhook_delivery_send(delivery_pk=delivery_pk)
    return delivery.status if delivery else None


@shared_task(acks_late=True, time_limit=300, soft_time_limit=290)
def deliver_webhooks(delivery_pks: list[int]) -> int:
    """Fan-out for a large commit (a case import): queue one ``deliver_webhook`` per attempt."""
    deliveries_enqueue(list(delivery_pks), fan_out=False)
    return len(delivery_pks)


@shared_task(time_limit=300, soft_time_limit=290)
def sweep_webhook_deliveries() -> dict[str, int]:
    return webhook_deliveries_sweep()
