"""Delivery to a real HTTP receiver on loopback, with Celery running tasks in this process (eager):
a correctly signed body, retries with back-off, disabling after failed deliveries, timeouts, the
sweeper, and that a receiver's failure never reaches the service that emitted the event."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from caseloop.audit.models import AuditEvent
from caseloop.audit.selectors import audit_verify
from caseloop.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from caseloop.webhooks.services import (
    webhook_create,
    webhook_deliveries_sweep,
    webhook_delivery_send,
    webhook_disable,
    webhook_enable,
    webhook_ping,
    webhooks_emit,
)
from caseloop.webhooks.signing import verify_signature
from tests.factories import make_actor

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(receiver):
    actor = make_actor()
    webhook, secret = webhook_create(actor=actor, url=receiver.url, events=["case.created"])
    return actor, webhook, secret


def _emit(actor, capture, data=None):
    with capture(execute=True):
        webhooks_emit(
            organization=actor.organization, event="case.created", payload=data or {"case": {"id": 1}}
        )


def _attempts(webhook: Webhook) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(webhook=webhook).order_by("created_at", "id"))


def test_an_emitted_event_arrives_signed_with_its_headers(hook, receiver, django_capture_on_commit_callbacks):
    actor, webhook, secret = hook
    _emit(actor, django_capture_on_commit_callbacks, {"case": {"id": 42, "note": "café"}})

    (request,) = receiver.requests
    assert verify_signature(secret, request.headers["Caseloop-Signature"], request.body)
    assert not verify_signature("whsec_wrong", request.headers["Caseloop-Signature"], request.body)
    body = json.loads(request.body)
    (attempt,) = _attempts(webhook)
    assert body["event"] == "case.created" and body["id"] == str(attempt.event_id)
    assert body["data"] == {"case": {"id": 42, "note": "café"}}
    assert body["organization"]["slug"] == actor.organization.slug
    assert request.headers["Caseloop-Event"] == "case.created"
    assert request.headers["Caseloop-Delivery"] == str(attempt.delivery_id)
    assert request.headers["Caseloop-Attempt"] == "1"
    assert request.headers["Content-Type"] == "application/json"
    assert attempt.status == DeliveryStatus.SUCCEEDED
    assert attempt.response_status == 200 and attempt.response_body == "answer 200 to request 1"
    assert attempt.duration_ms is not None and attempt.started_at and attempt.finished_at
    assert attempt.next_attempt_at is None and attempt.error == ""


def test_failed_attempts_are_retried_with_exponential_back_off_until_one_succeeds(
    hook, receiver, settings, django_capture_on_commit_callbacks
):
    actor, webhook, secret = hook
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    settings.WEBHOOK_RETRY_BASE_S = 7
    receiver.script = [500, 503, 200]
    _emit(actor, django_capture_on_commit_callbacks)

    first, second, third = attempts = _attempts(webhook)
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]
    assert [a.response_status for a in attempts] == [500, 503, 200]
    assert first.error == "HTTP 500 Internal Server Error"
    assert len({a.delivery_id for a in attempts}) == 1 and len({a.event_id for a in attempts}) == 1
    # The waits double: 7 s after the first failure, 14 s after the second.
    assert first.next_attempt_at - first.finished_at == timedelta(seconds=7)
    assert second.next_attempt_at - second.finished_at == timedelta(seconds=14)
    assert first.finished_at <= second.started_at <= second.finished_at <= third.started_at
    assert third.next_attempt_at is None
    # Every attempt carried the same body, each freshly signed, with its attempt number.
    assert len({r.body for r in receiver.requests}) == 1
    assert [r.headers["Caseloop-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert all(verify_signature(secret, r.headers["Caseloop-Signature"], r.body) for r in receiver.requests)
    webhook.refresh_from_db()
    assert webhook.active and webhook.consecutive_failures == 0


def test_the_back_off_is_capped(settings):
    from caseloop.webhooks.services import DeliveryConfig

    settings.WEBHOOK_RETRY_BASE_S, settings.WEBHOOK_RETRY_MAX_S = 10, 3600
    config = DeliveryConfig.current()
    assert [config.retry_delay_s(n) for n in range(1, 11)] == [
        10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600,
    ]  # fmt: skip


def test_a_webhook_is_disabled_after_failed_deliveries_in_a_row_with_the_reason(
    hook, receiver, settings, django_capture_on_commit_callbacks
):
    actor, webhook, _ = hook
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    settings.WEBHOOK_DISABLE_AFTER = 3
    receiver.then = 500
    for expected_failures in (1, 2):
        _emit(actor, django_capture_on_commit_callbacks)
        webhook.refresh_from_db()
        assert webhook.active and webhook.consecutive_failures == expected_failures
    _emit(actor, django_capture_on_commit_callbacks)

    webhook.refresh_from_db()
    assert not webhook.active
    assert webhook.consecutive_failures == 3
    assert "3 deliveries in a row failed (each after 2 attempts)" in webhook.disabled_reason
    assert "HTTP 500 Internal Server Error" in webhook.disabled_reason
    assert webhook.disabled_at is not None
    assert len(receiver.requests) == 6  # 3 deliveries, 2 attempts each
    event = AuditEvent.objects.get(verb="webhook.disabled", subject_id=str(webhook.pk))
    assert event.actor_kind == "system" and event.payload["automatic"] is True
    assert event.payload["consecutive_failures"] == 3
    assert audit_verify(organization=actor.organization).ok

    # Disabled: nothing is written or sent any more.
    _emit(actor, django_capture_on_commit_callbacks)
    assert len(receiver.requests) == 6 and len(_attempts(webhook)) == 6


def test_a_success_resets_the_failure_count(hook, receiver, settings, django_capture_on_commit_callbacks):
    actor, webhook, _ = hook
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.script = [500, 500, 200]
    for _ in range(2):
        _emit(actor, django_capture_on_commit_callbacks)
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 2
    _emit(actor, django_capture_on_commit_callbacks)
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0 and webhook.active


def test_a_ping_is_tried_once_and_does_not_count_towards_disabling(
    hook, receiver, settings, django_capture_on_commit_callbacks
):
    actor, webhook, secret = hook
    settings.WEBHOOK_DISABLE_AFTER = 1
    receiver.then = 500
    with django_capture_on_commit_callbacks(execute=True):
        webhook_ping(actor=actor, webhook=webhook)
    (attempt,) = _attempts(webhook)
    assert attempt.event == "ping" and attempt.status == "failed" and attempt.next_attempt_at is None
    webhook.refresh_from_db()
    assert webhook.active and webhook.consecutive_failures == 0

    # A disabled webhook still receives pings, so an admin can test a fix before enabling it.
    webhook_disable(actor=actor, webhook=webhook)
    receiver.then = 204
    with django_capture_on_commit_callbacks(execute=True):
        webhook_ping(actor=actor, webhook=webhook)
    assert _attempts(webhook)[-1].status == "succeeded"
    assert json.loads(receiver.requests[-1].body)["event"] == "ping"
    assert verify_signature(
        secret, receiver.requests[-1].headers["Caseloop-Signature"], receiver.requests[-1].body
    )


def test_a_timeout_is_a_failed_attempt_with_the_reason(
    hook, receiver, settings, django_capture_on_commit_callbacks
):
    actor, webhook, _ = hook
    settings.WEBHOOK_TIMEOUT_S = 1
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.script = [(200, 2.5)]
    _emit(actor, django_capture_on_commit_callbacks)
    (attempt,) = _attempts(webhook)
    assert attempt.status == "failed" and attempt.error == "timed out after 1 s"
    assert attempt.response_status is None and attempt.duration_ms >= 900


def test_a_closed_port_is_a_failed_attempt_with_the_reason(settings, django_capture_on_commit_callbacks):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    actor = make_actor()
    webhook, _ = webhook_create(actor=actor, url=f"http://127.0.0.1:{port}/x", events=["case.created"])
    _emit(actor, django_capture_on_commit_callbacks)
    (attempt,) = _attempts(webhook)
    assert attempt.status == "failed" and attempt.error.startswith("could not connect")


def test_redirects_are_not_followed(hook, receiver, settings, django_capture_on_commit_callbacks):
    actor, webhook, _ = hook
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.script = [302]
    _emit(actor, django_capture_on_commit_callbacks)
    (attempt,) = _attempts(webhook)
    assert attempt.status == "failed" and attempt.response_status == 302 and len(receiver.requests) == 1


def test_private_addresses_are_refused_at_send_time_without_retry(
    hook, receiver, settings, django_capture_on_commit_callbacks
):
    actor, webhook, _ = hook  # created while private addresses were allowed
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    _emit(actor, django_capture_on_commit_callbacks)
    (attempt,) = _attempts(webhook)
    assert attempt.status == "failed" and attempt.error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1")
    assert attempt.next_attempt_at is None and receiver.requests == []


def test_an_attempt_is_sent_once_even_if_its_task_runs_twice(hook, receiver):
    actor, _, _ = hook
    (delivery,) = webhooks_emit(organization=actor.organization, event="case.created", payload={"n": 1})
    assert webhook_delivery_send(delivery_pk=delivery.pk).status == "succeeded"
    assert webhook_delivery_send(delivery_pk=delivery.pk) is None
    assert len(receiver.requests) == 1


def test_attempts_queued_before_a_webhook_was_disabled_are_dropped_unsent(hook, receiver):
    actor, webhook, _ = hook
    (delivery,) = webhooks_emit(organization=actor.organization, event="case.created", payload={"n": 1})
    webhook_disable(actor=actor, webhook=webhook)
    result = webhook_delivery_send(delivery_pk=delivery.pk)
    assert result.status == "failed" and result.error == "not sent: the webhook is disabled"
    assert receiver.requests == []
    webhook_enable(actor=actor, webhook=webhook)
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0


def test_a_receivers_failure_never_reaches_the_emitting_service(
    receiver, settings, django_capture_on_commit_callbacks
):
    from tests.factories import live_case_fields, make_claims_workflow
    from workflows.models import Case
    from workflows.services import case_create

    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.then = 500
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor, production_stage=None)
    webhook, _ = webhook_create(actor=actor, url=receiver.url, events=["case.created"])
    with django_capture_on_commit_callbacks(execute=True):
        case = case_create(actor=actor, workflow=workflow, fields=live_case_fields(workflow)[0], decide=False)
    assert Case.objects.filter(pk=case.pk).exists()
    assert [a.status for a in _attempts(webhook)] == ["failed", "failed"]


def test_the_sweeper_requeues_lost_attempts_and_prunes_old_ones(hook, receiver, settings):
    actor, webhook, _ = hook
    settings.WEBHOOK_LOG_RETENTION_DAYS = 30
    lost, recent = (
        webhooks_emit(organization=actor.organization, event="case.created", payload={"n": n})[0]
        for n in (1, 2)
    )
    # ``lost``: its task vanished (broker down at commit) 20 minutes ago. ``recent``: still on its way.
    WebhookDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=20))
    old = WebhookDelivery.objects.create(
        webhook=webhook,
        event="case.created",
        payload={},
        status="succeeded",
        created_at=timezone.now() - timedelta(days=31),
    )
    assert webhook_deliveries_sweep() == {"requeued": 1, "pruned": 1}
    assert WebhookDelivery.objects.get(pk=lost.pk).status == "succeeded"
    assert WebhookDelivery.objects.get(pk=recent.pk).status == "pending"
    assert not WebhookDelivery.objects.filter(pk=old.pk).exists()
    assert [json.loads(r.body)["data"] for r in receiver.requests] == [{"n": 1}]
    assert webhook_deliveries_sweep() == {"requeued": 0, "pruned": 0}
