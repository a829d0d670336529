"""A real Celery worker process, on the real Redis broker, decides a case submitted through the
service layer."""

from __future__ import annotations

import contextlib
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from caseloop.audit.selectors import audit_verify
from caseloop.celery import app as celery_app
from tests.celery_workers import start_worker, stop_worker
from tests.factories import live_case_fields, make_actor, make_claims_workflow
from workflows.models import Case, CaseStatus, Decision, DecisionStatus
from workflows.services import case_create

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def decisions_worker():
    """Start ``celery worker -Q decisions`` against the test database; stop it afterwards."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    worker = start_worker("decisions", "test", output=subprocess.PIPE)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield worker
    finally:
        celery_app.conf.task_always_eager = eager
        stop_worker(worker)


def _wait_for_decision(case_id: int, worker: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not Decision.objects.filter(case_id=case_id).exists():
        if worker.poll() is not None:
            pytest.fail(f"worker exited early:\n{worker.stdout.read()}")
        time.sleep(0.2)


def _created_minutes_ago(case_id: int) -> None:
    """Queued and five minutes old: what the lost-case sweeper looks for."""
    Case.objects.filter(pk=case_id).update(
        status=CaseStatus.QUEUED, created_at=timezone.now() - timedelta(minutes=5)
    )


def test_real_worker_decides_a_live_case_submitted_through_the_service(decisions_worker):
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor)
    case = case_create(actor=actor, workflow=workflow, fields=live_case_fields(workflow)[0])
    assert Case.objects.get(pk=case.pk).status == CaseStatus.QUEUED  # nothing ran in this process

    _wait_for_decision(case.pk, decisions_worker)

    decision = Decision.objects.filter(case=case).first()
    assert decision is not None, "the worker did not decide the case within 60 s"
    assert decision.status == DecisionStatus.PENDING_REVIEW
    assert Case.objects.get(pk=case.pk).status == CaseStatus.DECIDED
    result = audit_verify(organization=actor.organization)
    assert result.ok, result


def test_beat_requeues_a_lost_case_from_an_empty_redis_queue_and_a_real_worker_decides_it(decisions_worker):
    from workflows.tasks import _decisions_queue_length, requeue_lost_cases

    actor = make_actor()
    workflow, _ = make_claims_workflow(actor)
    # decide=False: stored and queued, but no task published, as when Redis restarted in between.
    case = case_create(actor=actor, workflow=workflow, fields=live_case_fields(workflow)[0], decide=False)
    _created_minutes_ago(case.pk)
    # Redis deletes an empty list: the empty queue must read as 0, not as "cannot say".
    assert _decisions_queue_length() == 0

    assert requeue_lost_cases() == [case.pk]  # the beat task, run here; it publishes to Redis
    _wait_for_decision(case.pk, decisions_worker)
    assert Decision.objects.filter(case=case).count() == 1, "the worker did not decide the re-queued case"
    assert Case.objects.get(pk=case.pk).status == CaseStatus.DECIDED
    assert requeue_lost_cases() == []  # decided: nothing left to re-queue


def test_decisions_queue_length_counts_waiting_messages_on_redis():
    from workflows.tasks import _decisions_queue_length, decide_case

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        assert _decisions_queue_length() == 0
        for case_id in (10**9, 10**9 + 1, 10**9 + 2):  # no worker runs: the messages wait
            decide_case.delay(case_id)
        assert _decisions_queue_length() == 3
    finally:
        celery_app.conf.task_always_eager = eager
        client.flushdb()


@contextlib.contextmanager
def _broker_at(url: str):
    """Publish to ``url`` inside the block."""

    def reset_pools():  # kombu keeps a pool per broker URL; the app picks the URL's on next use
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    previous = celery_app.conf.broker_write_url
    reset_pools()
    celery_app.conf.broker_write_url = url
    try:
        yield
    finally:
        celery_app.conf.broker_write_url = previous
        reset_pools()


def test_a_case_sent_while_the_broker_is_down_is_accepted_and_decided_once_the_broker_is_back(
    decisions_worker,
):
    from tests.api.conftest import key_client
    from workflows.tasks import requeue_lost_cases

    actor = make_actor()
    workflow, _ = make_claims_workflow(actor)
    client = key_client(actor)
    with _broker_at("redis://127.0.0.1:9/0"):  # nothing listens there: the publish fails
        response = client.post(
            "/api/v1/cases", {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]}, format="json"
        )
    assert response.status_code == 201, response.content  # stored: the client must not send it again
    case_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    time.sleep(2)
    assert not Decision.objects.filter(case_id=case_id).exists()  # its task never reached the worker

    _created_minutes_ago(case_id)
    assert requeue_lost_cases() == [case_id]
    _wait_for_decision(case_id, decisions_worker)
    assert Decision.objects.filter(case_id=case_id).count() == 1
