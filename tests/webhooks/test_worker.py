"""Webhook deliveries through a real Celery worker on the ``default`` queue (Redis broker), to a
real HTTP receiver on loopback: a signed body arrives, and failed attempts are retried after the
back-off, measured at the receiver."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings

from caseloop.celery import app as celery_app
from caseloop.webhooks.models import WebhookDelivery
from caseloop.webhooks.services import webhook_create, webhooks_emit
from caseloop.webhooks.signing import verify_signature
from tests.celery_workers import start_worker, stop_worker
from tests.factories import live_case_fields, make_actor, make_claims_workflow
from workflows.services import case_create

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def default_worker(monkeypatch):
    """``celery worker -Q default`` with test-sized webhook settings, against the test database."""
    for name, value in {
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
        "WEBHOOK_RETRY_BASE_S": "1",
        "WEBHOOK_MAX_ATTEMPTS": "4",
        "WEBHOOK_TIMEOUT_S": "5",
    }.items():
        monkeypatch.setenv(name, value)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    worker = start_worker("default", "webhooks", output=subprocess.PIPE)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield worker
    finally:
        celery_app.conf.task_always_eager = eager
        stop_worker(worker)


def _wait(worker, receiver, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count and time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"worker exited early:\n{worker.stdout.read()}")
        time.sleep(0.1)
    assert len(receiver.requests) >= count, f"{len(receiver.requests)} of {count} requests within {timeout} s"


def _settled(webhook, count: int, timeout: float = 10.0) -> list[WebhookDelivery]:
    """The attempts once ``count`` of them are recorded as finished (the answer precedes the row)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempts = list(WebhookDelivery.objects.filter(webhook=webhook).order_by("attempt"))
        if sum(a.status != "pending" for a in attempts) >= count:
            return attempts
        time.sleep(0.1)
    pytest.fail(f"attempts not recorded: {list(WebhookDelivery.objects.values('attempt', 'status'))}")


def test_a_real_worker_delivers_a_signed_case_created(default_worker, receiver):
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor, production_stage=None)
    webhook, secret = webhook_create(actor=actor, url=receiver.url, events=["case.created"])
    case = case_create(
        actor=actor, workflow=workflow, fields=live_case_fields(workflow)[0], split="train", decide=False
    )
    assert WebhookDelivery.objects.get(webhook=webhook).status == "pending"  # nothing sent in this process

    _wait(default_worker, receiver, 1)
    (request,) = receiver.requests
    assert verify_signature(secret, request.headers["Caseloop-Signature"], request.body)
    body = json.loads(request.body)
    assert body["event"] == "case.created" and body["data"]["case"]["id"] == case.pk
    (attempt,) = _settled(webhook, 1)
    assert attempt.status == "succeeded" and attempt.response_status == 200
    assert request.headers["Caseloop-Delivery"] == str(attempt.delivery_id)


def test_a_real_worker_retries_with_back_off_until_the_receiver_recovers(default_worker, receiver):
    actor = make_actor()
    webhook, secret = webhook_create(actor=actor, url=receiver.url, events=["decision.finalized"])
    receiver.script = [500, 502, 200]
    webhooks_emit(
        organization=actor.organization, event="decision.finalized", payload={"decision": {"id": 9}}
    )

    _wait(default_worker, receiver, 3)
    first, second, third = receiver.requests
    # Retries wait 1 s, then 2 s (WEBHOOK_RETRY_BASE_S=1 in the worker), measured on arrival.
    assert second.at - first.at >= 0.95, second.at - first.at
    assert third.at - second.at >= 1.95, third.at - second.at
    assert all(verify_signature(secret, r.headers["Caseloop-Signature"], r.body) for r in receiver.requests)
    assert [r.headers["Caseloop-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert len({r.headers["Caseloop-Delivery"] for r in receiver.requests}) == 1

    attempts = _settled(webhook, 3)
    assert [(a.attempt, a.status, a.response_status) for a in attempts] == [
        (1, "failed", 500),
        (2, "failed", 502),
        (3, "succeeded", 200),
    ]
    assert attempts[0].next_attempt_at - attempts[0].finished_at == timedelta(seconds=1)
    assert attempts[1].next_attempt_at - attempts[1].finished_at == timedelta(seconds=2)
    time.sleep(1.5)
    assert len(receiver.requests) == 3  # nothing more after the success
