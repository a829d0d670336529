"""Writes for webhooks: create, delete, enable/disable, test ping; emitting events; sending attempts.

You are in the webhooks room. How an event travels:

1. A business service calls :func:`webhooks_emit` inside its own transaction. One query finds the
   organisation's active webhooks subscribed to the event; with none, that is all it costs. With
   some, it writes attempt 1 of each delivery (pending) in a savepoint, so the delivery rows commit
   or roll back with the business change (an outbox) and a failure here is logged, never raised:
   webhooks cannot break the change that emitted them.
2. On commit, each pending attempt is queued for the ``default`` workers (``deliver_webhook``).
3. :func:`webhook_delivery_send` claims the attempt (compare-and-swap with a lease, so a
   redelivered task never sends it twice at once), signs and POSTs the body with httpx outside any
   transaction, then records the result. A failed attempt schedules the next one with exponential
   back-off (``WEBHOOK_RETRY_BASE_S`` · 2^(attempt-1), at most ``WEBHOOK_RETRY_MAX_S``) until
   ``WEBHOOK_MAX_ATTEMPTS``; a delivery whose every attempt failed counts one consecutive failure,
   and ``WEBHOOK_DISABLE_AFTER`` of them in a row disable the webhook with the reason shown to admins.
4. :func:`webhook_deliveries_sweep` (Celery beat) re-queues attempts whose task was lost (broker
   down at commit, worker killed) and prunes the log after ``WEBHOOK_LOG_RETENTION_DAYS``.

Webhook changes (created, deleted, enabled, disabled, pinged) are audited; the attempts themselves
are logged in WebhookDelivery, not in the audit chain, which already holds the business events.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from caseloop.accounts.models import Organization
from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.services import audit_record
from caseloop.webhooks import payloads
from caseloop.webhooks.models import EVENTS, PING, DeliveryStatus, Webhook, WebhookDelivery
from caseloop.webhooks.signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    sign,
)

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 200
RESPONSE_EXCERPT_CHARS = 2000
USER_AGENT = "Caseloop-Webhooks/1"
# Above this many deliveries from one commit, they are queued by fan-out tasks on the workers
# instead of one broker round trip each inside the committing request.
FAN_OUT_ABOVE = 50
FAN_OUT_CHUNK = 500
SWEEP_GRACE = timedelta(minutes=10)

Payload = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """The delivery settings, read per call so tests (and operators' overrides) take effect."""

    timeout_s: int
    max_attempts: int
    retry_base_s: int
    retry_max_s: int
    disable_after: int
    allow_private_networks: bool

    @classmethod
    def current(cls) -> DeliveryConfig:
        return cls(
            timeout_s=settings.WEBHOOK_TIMEOUT_S,
            max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
            retry_base_s=settings.WEBHOOK_RETRY_BASE_S,
            retry_max_s=settings.WEBHOOK_RETRY_MAX_S,
            disable_after=settings.WEBHOOK_DISABLE_AFTER,
            allow_private_networks=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
        )

    def retry_delay_s(self, attempt: int) -> int:
        """Seconds between failed ``attempt`` and the next: base, 2·base, 4·base … capped."""
        return min(self.retry_base_s * 2 ** (attempt - 1), self.retry_max_s)

    @property
    def lease(self) -> timedelta:
        """How long a claimed attempt stays claimed before another worker may take it over."""
        return timedelta(seconds=2 * self.timeout_s + 60)


# --------------------------------------------------------------------------- validation


def redacted_url(url: str) -> str:
    """The URL without credentials, query or fragment: what logs and the audit trail show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _private_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        return False  # a name: checked against what it resolves to when sending


def _clean_url(url: Any, config: DeliveryConfig) -> tuple[str, str | None]:
    if not isinstance(url, str) or not url.strip():
        return "", "Give the URL that receives the events (http:// or https://)."
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        return url, f"At most {MAX_URL_LENGTH} characters."
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return url, "Use an http:// or https:// URL."
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        return url, f"{url!r} is not a valid http(s) URL."
    if not config.allow_private_networks and _private_host(urlsplit(url).hostname or ""):
        return url, "Private, loopback and link-local addresses are not allowed on this server."
    return url, None


def _clean_events(events: Any) -> tuple[list[str], str | None]:
    if isinstance(events, str) or not isinstance(events, Iterable):
        return [], "Give a list of event names."
    names = list(events)
    if not all(isinstance(name, str) for name in names):
        return [], "Event names are strings."
    unknown = sorted(set(names) - set(EVENTS))
    if unknown:
        return [], f"Unknown events: {', '.join(unknown)}. Known: {', '.join(EVENTS)}."
    if not names:
        return [], "Choose at least one event."
    return [event for event in EVENTS if event in names], None


def _webhook_facts(webhook: Webhook) -> dict[str, Any]:
    return {
        "url": redacted_url(webhook.url),
        "events": list(webhook.events),
        "description": webhook.description,
    }


def _locked(actor: Actor, webhook: Webhook) -> Webhook:
    require_same_org(actor, webhook)
    return Webhook.objects.select_for_update().get(pk=webhook.pk, organization=actor.organization)


# --------------------------------------------------------------------------- admin actions


@transaction.atomic
def webhook_create(
    *, actor: Actor, url: str, events: list[str], description: str = ""
) -> tuple[Webhook, str]:
    """Create a webhook (admins). Returns it and its signing secret, which is shown once.
    ValidationError names ``url``, ``events`` or ``description``."""
    require(actor, "webhook.manage")
    config = DeliveryConfig.current()
    errors: dict[str, str] = {}
    url, url_error = _clean_url(url, config)
    if url_error:
        errors["url"] = url_error
    clean_events, events_error = _clean_events(events)
    if events_error:
        errors["events"] = events_error
    if not isinstance(description, str):
        errors["description"] = "The description is text."
    elif len(description.strip()) > MAX_DESCRIPTION_LENGTH:
        errors["description"] = f"At most {MAX_DESCRIPTION_LENGTH} characters."
    if errors:
        raise ValidationError(errors)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    webhook = Webhook.objects.create(
        organization=actor.organization,
        url=url,
        events=clean_events,
        description=description.strip(),
        secret=secret,
        created_by=actor.user,
    )
    audit_record(actor=actor, verb="webhook.created", subject=webhook, payload=_webhook_facts(webhook))
    return webhook, secret


@transaction.atomic
def webhook_delete(*, actor: Actor, webhook: Webhook) -> None:
    """Delete a webhook and its delivery log (admins). Attempts still queued find nothing to send."""
    require(actor, "webhook.manage")
    webhook = _locked(actor, webhook)
    audit_record(actor=actor, verb="webhook.deleted", subject=webhook, payload=_webhook_facts(webhook))
    webhook.delete()


@transaction.atomic
def webhook_enable(*, actor: Actor, webhook: Webhook) -> Webhook:
    """Turn a disabled webhook back on, with its failure count reset (admins)."""
    require(actor, "webhook.manage")
    webhook = _locked(actor, webhook)
    if webhook.active:
        return webhook
    audit_record(
        actor=actor,
        verb="webhook.enabled",
        subject=webhook,
        payload={**_webhook_facts(webhook), "was_disabled_because": webhook.disabled_reason},
    )
    webhook.active, webhook.disabled_reason, webhook.disabled_at = True, "", None
    webhook.consecutive_failures = 0
    webhook.save(update_fields=["active", "disabled_reason", "disabled_at", "consecutive_failures"])
    return webhook


@transaction.atomic
def webhook_disable(*, actor: Actor, webhook: Webhook, reason: str = "") -> Webhook:
    """Stop sending to a webhook until it is enabled again (admins). Queued attempts are dropped."""
    require(actor, "webhook.manage")
    webhook = _locked(actor, webhook)
    if not webhook.active:
        return webhook
    reason = reason.strip() or f"Disabled by {actor.label}."
    webhook.active, webhook.disabled_reason, webhook.disabled_at = False, reason, timezone.now()
    webhook.save(update_fields=["active", "disabled_reason", "disabled_at"])
    audit_record(
        actor=actor,
        verb="webhook.disabled",
        subject=webhook,
        payload={**_webhook_facts(webhook), "reason": reason, "automatic": False},
    )
    return webhook


@transaction.atomic
def webhook_ping(*, actor: Actor, webhook: Webhook) -> WebhookDelivery:
    """Queue a signed ``ping`` to the webhook (admins): one attempt, no retries, and it neither counts
    towards disabling nor needs the webhook enabled, so an admin can test a fix before enabling.
    Returns the pending attempt; its result lands in the delivery log."""
    require(actor, "webhook.manage")
    webhook = _locked(actor, webhook)
    event_id = uuid.uuid4()
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        event=PING,
        event_id=event_id,
        payload=_envelope(
            organization=actor.organization,
            event=PING,
            event_id=event_id,
            data=payloads.ping(webhook, actor=actor),
        ),
        next_attempt_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        verb="webhook.pinged",
        subject=webhook,
        payload={"url": redacted_url(webhook.url), "delivery": str(delivery.delivery_id)},
    )
    transaction.on_commit(partial(deliveries_enqueue, [delivery.pk]), robust=True)
    return delivery


# --------------------------------------------------------------------------- emitting events


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _envelope(
    *, organization: Organization, event: str, event_id: uuid.UUID, data: Mapping[str, Any]
) -> dict:
    return {
        "id": str(event_id),
        "event": event,
        "created_at": timezone.now().isoformat(),
        "organization": {"id": organization.pk, "slug": organization.slug},
        "data": _jsonable(data),
    }


def _subscribers(organization: Organization, event: str) -> list[int]:
    """Ids of the organisation's active webhooks subscribed to ``event``: one indexed query. The
    events are matched here rather than in SQL because SQLite (the embedded default) has no JSON
    containment, and an organisation has a handful of webhooks."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; known: {', '.join(EVENTS)}")
    rows = Webhook.objects.filter(organization_id=organization.pk, active=True).values_list("pk", "events")
    return [pk for pk, events in rows if event in events]


def webhooks_emit(*, organization: Organization, event: str, payload: Payload) -> list[WebhookDelivery]:
    """Send ``event`` to the organisation's active webhooks subscribed to it, once the caller's
    transaction commits. ``payload`` is the event's ``data``, or a callable returning it (called only
    when someone subscribes). Returns the pending attempts written (none: nobody subscribes, or
    writing them failed, which is logged and never raised)."""
    return webhooks_emit_many(
        organization=organization, event=event, payloads=lambda: [payload() if callable(payload) else payload]
    )


def webhooks_emit_many(
    *, organization: Organization, event: str, payloads: Callable[[], Iterable[Mapping[str, Any]]]
) -> list[WebhookDelivery]:
    """Bulk form of :func:`webhooks_emit` (case imports): one event per item ``payloads()`` yields,
    with the same single check for subscribers first."""
    hooks = _subscribers(organization, event)
    if not hooks:
        return []
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the caller's change intact
            now = timezone.now()
            rows: list[WebhookDelivery] = []
            for data in payloads():
                event_id = uuid.uuid4()
                envelope = _envelope(organization=organization, event=event, event_id=event_id, data=data)
                rows.extend(
                    WebhookDelivery(
                        webhook_id=pk, event=event, event_id=event_id, payload=envelope, next_attempt_at=now
                    )
                    for pk in hooks
                )
            deliveries = WebhookDelivery.objects.bulk_create(rows, batch_size=500)
    except Exception:
        logger.exception("could not queue webhook event %s for organisation %s", event, organization.pk)
        return []
    ids = [delivery.pk for delivery in deliveries if delivery.pk is not None]
    if ids:
        transaction.on_commit(partial(deliveries_enqueue, ids), robust=True)
    return deliveries


def deliveries_enqueue(ids: list[int], *, countdown: float | None = None, fan_out: bool = True) -> None:
    """Queue ``deliver_webhook`` for each attempt id (after ``countdown`` seconds); many at once go
    through ``deliver_webhooks`` fan-out tasks so the caller makes one broker call per chunk."""
    from caseloop.webhooks.tasks import deliver_webhook, deliver_webhooks

    if fan_out and len(ids) > FAN_OUT_ABOVE:
        for start in range(0, len(ids), FAN_OUT_CHUNK):
            deliver_webhooks.delay(ids[start : start + FAN_OUT_CHUNK])
        return
    for pk in ids:
        deliver_webhook.apply_async(args=[pk], countdown=countdown)


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class AttemptResult:
    ok: bool
    status_code: int | None = None
    body: str = ""
    error: str = ""
    duration_ms: int = 0
    retryable: bool = True


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent, and signed, for a stored envelope."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _address_refusal(url: str, config: DeliveryConfig) -> str | None:
    """Why ``url`` may not be called (it resolves to a private address and they are not allowed)."""
    if config.allow_private_networks:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError):
        return None  # let the request fail and be retried: DNS may come back
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return (
                f"refused: {host} resolves to {address}, a private or reserved address "
                "(WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)"
            )
    return None


def _post(url: str, body: bytes, headers: Mapping[str, str], config: DeliveryConfig) -> AttemptResult:
    """POST ``body``; success is a 2xx answer. Redirects are not followed (a 3xx is a failure)."""
    refusal = _address_refusal(url, config)
    if refusal:
        return AttemptResult(ok=False, error=refusal, retryable=False)
    started = time.monotonic()
    try:
        with (
            httpx.Client(timeout=config.timeout_s, follow_redirects=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            excerpt = b""
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= RESPONSE_EXCERPT_CHARS * 4:
                    break
    except httpx.TimeoutException:
        error = f"timed out after {config.timeout_s} s"
    except httpx.ConnectError as exc:
        error = f"could not connect: {exc}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        elapsed = round((time.monotonic() - started) * 1000)
        text = excerpt.decode("utf-8", errors="replace")[:RESPONSE_EXCERPT_CHARS]
        ok = 200 <= response.status_code < 300
        return AttemptResult(
            ok=ok,
            status_code=response.status_code,
            body=text,
            error="" if ok else f"HTTP {response.status_code} {response.reason_phrase}".strip(),
            duration_ms=elapsed,
        )
    return AttemptResult(ok=False, error=error, duration_ms=round((time.monotonic() - started) * 1000))


def delivery_headers(delivery: WebhookDelivery, body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.delivery_id),
        ATTEMPT_HEADER: str(delivery.attempt),
        SIGNATURE_HEADER: sign(secret, body),
    }


def webhook_delivery_send(*, delivery_pk: int) -> WebhookDelivery | None:
    """Make one pending attempt (the ``deliver_webhook`` task's body). Returns the attempt as recorded,
    or None when there was nothing to do: already sent or being sent, or the webhook was deleted."""
    config = DeliveryConfig.current()
    now = timezone.now()
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_pk, status=DeliveryStatus.PENDING)
        .filter(Q(started_at__isnull=True) | Q(started_at__lt=now - config.lease))
        .update(started_at=now)
    )
    if claimed != 1:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook__organization").filter(pk=delivery_pk).first()
    if delivery is None:
        return None
    webhook = delivery.webhook
    if not webhook.active and not delivery.is_ping:
        result = AttemptResult(ok=False, error="not sent: the webhook is disabled", retryable=False)
        return _record(delivery, result, config, sent=False)
    body = body_bytes(delivery.payload)
    result = _post(webhook.url, body, delivery_headers(delivery, body, webhook.secret), config)
    return _record(delivery, result, config)


@transaction.atomic
def _record(
    delivery: WebhookDelivery, result: AttemptResult, config: DeliveryConfig, *, sent: bool = True
) -> WebhookDelivery | None:
    """Store an attempt's result; schedule the retry, or count the failed delivery and disable the
    webhook at the threshold. Locks the webhook row so concurrent attempts count correctly."""
    webhook = Webhook.objects.select_for_update().filter(pk=delivery.webhook_id).first()
    if webhook is None:
        return None
    now = timezone.now()
    retry_at = None
    may_retry = sent and result.retryable and webhook.active and not delivery.is_ping
    if not result.ok and may_retry and delivery.attempt < config.max_attempts:
        retry_at = now + timedelta(seconds=config.retry_delay_s(delivery.attempt))
    fields = {
        "status": DeliveryStatus.SUCCEEDED if result.ok else DeliveryStatus.FAILED,
        "response_status": result.status_code,
        "response_body": result.body,
        "error": result.error,
        "duration_ms": result.duration_ms if sent else None,
        "next_attempt_at": retry_at,
        "finished_at": now,
    }
    if WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**fields) != 1:
        return None  # taken over after the lease ran out, and recorded by the other worker
    for name, value in fields.items():
        setattr(delivery, name, value)
    if result.ok:
        if webhook.consecutive_failures:
            Webhook.objects.filter(pk=webhook.pk).update(consecutive_failures=0)
    elif retry_at is not None:
        following = WebhookDelivery.objects.create(
            webhook=webhook,
            event=delivery.event,
            event_id=delivery.event_id,
            delivery_id=delivery.delivery_id,
            payload=delivery.payload,
            attempt=delivery.attempt + 1,
            next_attempt_at=retry_at,
        )
        delay = config.retry_delay_s(delivery.attempt)
        transaction.on_commit(partial(deliveries_enqueue, [following.pk], countdown=delay), robust=True)
    elif sent and not delivery.is_ping:
        _count_failed_delivery(webhook, delivery, config, now)
    return delivery


def _count_failed_delivery(
    webhook: Webhook, delivery: WebhookDelivery, config: DeliveryConfig, now: Any
) -> None:
    failures = webhook.consecutive_failures + 1
    Webhook.objects.filter(pk=webhook.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    if not webhook.active or failures < config.disable_after:
        return
    reason = (
        f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: {failures} deliveries in a row failed "
        f"(each after {delivery.attempt} attempt{'s' if delivery.attempt != 1 else ''}). "
        f"Last error: {delivery.error or 'unknown'}. Fix the endpoint, send a test ping, then enable it."
    )
    Webhook.objects.filter(pk=webhook.pk, active=True).update(
        active=False, disabled_reason=reason, disabled_at=now
    )
    audit_record(
        actor=Actor.for_system(webhook.organization),
        verb="webhook.disabled",
        subject=webhook,
        payload={
            **_webhook_facts(webhook),
            "reason": reason,
            "automatic": True,
            "consecutive_failures": failures,
            "last_delivery": str(delivery.delivery_id),
        },
    )


# --------------------------------------------------------------------------- maintenance


def webhook_deliveries_sweep(*, limit: int = 1000) -> dict[str, int]:
    """Re-queue pending attempts overdue by more than SWEEP_GRACE and not being sent (their task was
    lost), and delete finished attempts older than the retention period. Run by Celery beat."""
    config = DeliveryConfig.current()
    now = timezone.now()
    overdue = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lt=now - SWEEP_GRACE)
        .filter(Q(started_at__isnull=True) | Q(started_at__lt=now - config.lease))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if overdue:
        # Moving the due time means the next sweep waits another grace period for these.
        WebhookDelivery.objects.filter(pk__in=overdue, status=DeliveryStatus.PENDING).update(
            next_attempt_at=now
        )
        deliveries_enqueue(overdue)
    cutoff = now - timedelta(days=settings.WEBHOOK_LOG_RETENTION_DAYS)
    old = WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(status=DeliveryStatus.PENDING)
    pruned, _ = WebhookDelivery.objects.filter(pk__in=old.values("pk")[:10_000]).delete()
    return {"requeued": len(overdue), "pruned": pruned}
