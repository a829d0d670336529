"""Webhooks: an organisation's signed outbound notifications, and the log of every delivery attempt.

A *delivery* is one event sent to one webhook. It is logged one row per **attempt**: attempt 1 is
written (pending) when the event is emitted, and each failed attempt that may be retried writes the
next attempt's row (pending, due at ``next_attempt_at``). All attempts of a delivery share its
``delivery_id`` (the ``Caseloop-Delivery`` header, stable across retries, so a receiver can ignore
a duplicate) and ``event_id`` (the envelope's ``id``, shared by every webhook the event went to).
"""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from caseloop.accounts.models import Organization

PING = "ping"
# The events a webhook can subscribe to, with what each tells an integration. ``ping`` is not
# subscribable: it is sent only when an admin asks for a test delivery.
EVENT_DESCRIPTIONS: dict[str, str] = {
    "decision.finalized": "A decision reached its final status: executed or rejected.",
    "case.created": "A case was created (one event per case, also for imports and generated cases).",
    "training_job.finished": "A training job ended: succeeded, failed or cancelled.",
    "policy_version.promoted": "A policy version moved to another stage (shadow, supervised, …).",
}
EVENTS: tuple[str, ...] = tuple(EVENT_DESCRIPTIONS)


class Webhook(models.Model):
    """An HTTPS (or HTTP) endpoint that receives an organisation's events, signed with ``secret``.

    The secret is kept as it is (not hashed, unlike API keys) because every delivery is signed
    with it; it is shown to the admin once, at creation, and never again.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list, help_text="The subscribed event names, from EVENTS.")
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, help_text="Signs every delivery (HMAC-SHA256).")
    active = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Deliveries in a row whose every attempt failed; a success resets it."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "active"], name="webhook_org_active")]

    def __str__(self) -> str:
        return self.description or self.url

    def subscribes_to(self, event: str) -> bool:
        return event in self.events


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One attempt at delivering one event to one webhook (see the module docstring)."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    event_id = models.UUIDField(default=uuid.uuid4, help_text="The envelope's id; shared across webhooks.")
    delivery_id = models.UUIDField(
        default=uuid.uuid4, help_text="The Caseloop-Delivery header; shared by a delivery's attempts."
    )
    payload = models.JSONField(help_text="The envelope sent as the body: id, event, created_at, data.")
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="The start of the receiver's answer.")
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Pending: when this attempt is due. Failed: when the retry is due (empty: no retry).",
    )
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker sent it.")
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["webhook", "-created_at", "-id"], name="webhook_delivery_log"),
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(status="pending"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery_id", "attempt"], name="webhook_delivery_attempt_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values), name="webhook_delivery_status_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to webhook {self.webhook_id}, attempt {self.attempt}"

    @property
    def is_ping(self) -> bool:
        return self.event == PING

    @property
    def payload_pretty(self) -> str:
        return json.dumps(self.payload, indent=2, ensure_ascii=False)
