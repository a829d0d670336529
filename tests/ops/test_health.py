"""/healthz, /readyz and ``python -m caseloop.health`` against the real database and broker."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.ops.ops_processes import PYTHON, ROOT, free_port, production_env


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any query would fail this test.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_readyz_is_ok_when_database_and_broker_answer(client, settings):
    settings.VLLM_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
@pytest.mark.postgres
def test_readyz_names_the_broker_when_it_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.VLLM_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"] == {
        "ok": False,
        "ms": body["checks"]["broker"]["ms"],
        "error": "ConnectionError",
    }


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_readyz_names_vllm_when_it_is_configured_and_unreachable(client, settings):
    settings.VLLM_URL = f"http://127.0.0.1:{free_port()}"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["vllm"]


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_readyz_asks_the_vllm_health_endpoint_when_configured(client, settings):
    seen: list[str] = []

    class Health(BaseHTTPRequestHandler):  # answers like vLLM's OpenAI server's GET /health
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.VLLM_URL = f"http://127.0.0.1:{server.server_port}/"
        response = client.get("/readyz")
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200, response.content
    assert seen == ["/health"]
    assert response.json()["checks"]["vllm"]["ok"] is True


@pytest.mark.django_db
@pytest.mark.postgres
def test_a_dependency_that_hangs_is_reported_within_the_deadline(client, settings):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections and never answers
    try:
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        settings.VLLM_URL = ""
        settings.READYZ_TIMEOUT = 1
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert elapsed < 3


def _cli(*args: str, **env: str) -> tuple[int, dict]:
    result = subprocess.run(
        [PYTHON, "-m", "caseloop.health", *args],
        cwd=ROOT,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.redis
def test_the_command_line_check_passes_when_the_broker_answers():
    code, report = _cli("--check", "broker")
    assert code == 0 and report["failed"] == []


@pytest.mark.slow
@pytest.mark.redis
def test_the_command_line_check_fails_naming_the_database():
    code, report = _cli(
        "--check",
        "database",
        "--check",
        "broker",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/x",
    )
    assert code == 1
    assert report["failed"] == ["database"]
    assert report["checks"]["broker"]["ok"] is True
