"""Reads for webhooks, always within the actor's organisation and behind ``webhook.manage``."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.webhooks.models import Webhook, WebhookDelivery


class WebhookNotFound(Webhook.DoesNotExist, Http404):
    """No webhook with that id in the actor's organisation. Both a ``Webhook.DoesNotExist`` (for
    services and the API's handlers) and an ``Http404`` (views and DRF answer 404 by themselves)."""


def webhook_list(*, actor: Actor) -> QuerySet[Webhook]:
    """The organisation's webhooks, newest first, each annotated with its latest attempt's
    ``last_status`` and ``last_attempt_at``."""
    require(actor, "webhook.manage")
    latest = WebhookDelivery.objects.filter(webhook=OuterRef("pk")).order_by("-created_at", "-id")
    return Webhook.objects.filter(organization=actor.organization).annotate(
        last_status=Subquery(latest.values("status")[:1]),
        last_attempt_at=Subquery(latest.values("created_at")[:1]),
    )


def webhook_get(*, actor: Actor, webhook_id: Any) -> Webhook:
    """One webhook of the actor's organisation; :class:`WebhookNotFound` for an unknown id, a
    malformed one, or another organisation's webhook (which it does not reveal exists)."""
    require(actor, "webhook.manage")
    try:
        pk = int(webhook_id)
    except (TypeError, ValueError):
        raise WebhookNotFound(f"No webhook {webhook_id!r}.") from None
    webhook = Webhook.objects.filter(pk=pk, organization=actor.organization).first()
    if webhook is None:
        raise WebhookNotFound(f"No webhook {pk} in this organisation.")
    return webhook


def webhook_deliveries(*, actor: Actor, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    """The webhook's delivery log, one row per attempt, newest first."""
    require(actor, "webhook.manage")
    require_same_org(actor, webhook)
    return WebhookDelivery.objects.filter(webhook=webhook).order_by("-created_at", "-id")
