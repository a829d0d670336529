"""Request ids: echoed, logged as JSON by a real gunicorn, carried into Celery tasks (a real worker)
and into the audit events those tasks write."""

from __future__ import annotations

import contextlib
import functools
import json
import time

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from caseloop.audit.models import AuditEvent
from caseloop.audit.selectors import audit_verify
from caseloop.celery import app as celery_app
from caseloop.observability import RequestIdMiddleware, current_request_id
from tests.celery_workers import start_worker, stop_worker
from tests.factories import live_case_fields, make_actor, make_claims_workflow
from tests.ops.ops_processes import gunicorn_server, production_env
from workflows.models import Decision
from workflows.services import case_create


def test_the_response_echoes_the_callers_request_id(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="trace-1234.abc:9")
    assert response["X-Request-ID"] == "trace-1234.abc:9"


@pytest.mark.parametrize("sent", [None, "", "has spaces", "x" * 65, "new\nline", "é"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(client, sent):
    headers = {} if sent is None else {"HTTP_X_REQUEST_ID": sent}
    first = client.get("/healthz", **headers)["X-Request-ID"]
    second = client.get("/healthz", **headers)["X-Request-ID"]
    assert first != sent and len(first) == 32 and int(first, 16) >= 0
    assert first != second


def test_the_id_is_only_current_during_the_request():
    seen = []
    middleware = RequestIdMiddleware(lambda request: seen.append(current_request_id()) or HttpResponse())
    middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="inside"))
    assert seen == ["inside"]
    assert current_request_id() == ""


@pytest.mark.slow
def test_gunicorn_writes_json_log_lines_carrying_the_request_id(tmp_path):
    env = production_env(SECURE_SSL_REDIRECT="0", LOG_FORMAT="json", LOG_LEVEL="INFO")
    log_path = tmp_path / "gunicorn.log"
    with gunicorn_server(env, log_path=log_path) as base:
        import httpx

        response = httpx.get(f"{base}/", headers={"X-Request-ID": "json-log-check-1"})
        assert response.status_code == 302  # to the sign-in page
        assert response.headers["X-Request-ID"] == "json-log-check-1"
        time.sleep(0.3)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r["logger"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records)
    request_lines = [
        r for r in records if r["message"] == "request" and r["request_id"] == "json-log-check-1"
    ]
    assert len(request_lines) == 1, records
    line = request_lines[0]
    assert (line["method"], line["path"], line["route"], line["status"]) == ("GET", "/", "home", 302)
    assert line["level"] == "INFO" and line["logger"] == "caseloop.request"
    assert line["duration_ms"] >= 0 and line["timestamp"].endswith("+00:00")


def _submit_in_request(actor, workflow, request_id: str, *, committing=contextlib.nullcontext):
    """A live case created while handling a request with ``request_id`` (the middleware sets it).
    ``committing`` stands in for the commit inside a test's transaction, where on_commit work runs."""
    created = []

    def view(request):
        with committing():
            created.append(case_create(actor=actor, workflow=workflow, fields=live_case_fields(workflow)[0]))
        return HttpResponse(status=201)

    response = RequestIdMiddleware(view)(RequestFactory().post("/cases", HTTP_X_REQUEST_ID=request_id))
    assert response["X-Request-ID"] == request_id
    return created[0]


def _run_events(case) -> list[AuditEvent]:
    decision = Decision.objects.get(case=case)
    return list(
        AuditEvent.objects.filter(
            organization=case.organization,
            verb__in=["agent.tool_called", "agent.decided", f"decision.{decision.status}"],
        ).order_by("sequence")
    )


@pytest.mark.django_db
@pytest.mark.postgres
def test_with_tasks_in_process_the_task_audit_events_carry_the_request_id(
    django_capture_on_commit_callbacks,
):
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor)
    committing = functools.partial(django_capture_on_commit_callbacks, execute=True)
    case = _submit_in_request(actor, workflow, "eager-request-7", committing=committing)
    events = _run_events(case)
    assert events and {e.request_id for e in events} == {"eager-request-7"}
    created = AuditEvent.objects.get(verb="case.created", subject_id=str(case.pk))
    assert created.request_id == "eager-request-7"
    assert audit_verify(organization=actor.organization).ok


@pytest.fixture
def decisions_worker(tmp_path):
    """A real ``celery worker -Q decisions`` on the test database; its log lines go to a file."""
    log = (tmp_path / "worker.log").open("w")
    worker = start_worker("decisions", "ops", output=log.fileno())
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield worker, tmp_path / "worker.log"
    finally:
        celery_app.conf.task_always_eager = eager
        stop_worker(worker)
        log.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_task_and_writes_its_audit_events_under_the_request_id(decisions_worker):
    worker, log_path = decisions_worker
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor)
    case = _submit_in_request(actor, workflow, "worker-request-42")

    deadline = time.monotonic() + 90
    while not Decision.objects.filter(case=case).exists():
        assert worker.poll() is None, f"worker exited early:\n{log_path.read_text()}"
        assert time.monotonic() < deadline, f"no decision within 90 s:\n{log_path.read_text()}"
        time.sleep(0.2)

    events = _run_events(case)
    assert len(events) >= 2  # tool calls, the decision, its routing
    assert {e.request_id for e in events} == {"worker-request-42"}
    assert audit_verify(organization=actor.organization).ok  # the request id is part of each hash

    # The worker's own log lines for the task are JSON and carry the id too.
    deadline = time.monotonic() + 10
    while True:
        records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        task_lines = [
            r
            for r in records
            if r.get("logger") == "caseloop.task" and r.get("task") == "workflows.tasks.decide_case"
        ]
        if any(r["message"] == "task finished" for r in task_lines) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {r["message"] for r in task_lines} == {"task started", "task finished"}, log_path.read_text()
    assert {r["request_id"] for r in task_lines} == {"worker-request-42"}
