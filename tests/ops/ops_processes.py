"""Running Caseloop the way production does, in subprocesses: production environment variables,
``manage.py`` commands and a real gunicorn server on a free port."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production process: DEBUG off, a strong key, a public host, HTTPS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="caseloop.example.com,localhost,127.0.0.1",
        CSRF_TRUSTED_ORIGINS="https://caseloop.example.com",
        DJANGO_SETTINGS_MODULE="caseloop.settings",
    )
    for name in (
        "SECURE_SSL_REDIRECT",
        "SECURE_COOKIES",
        "TRUST_X_FORWARDED_PROTO",
        "METRICS_TOKEN",
        "VLLM_URL",
    ):
        env.pop(name, None)
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn_server(env: dict[str, str], *, workers: int = 1, log_path: Path) -> Iterator[str]:
    """gunicorn with deploy/gunicorn.conf.py on a free port; yields its base URL, stops it after."""
    port = free_port()
    env = dict(env, PORT=str(port), WEB_CONCURRENCY=str(workers), WEB_THREADS="2")
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                GUNICORN,
                "caseloop.wsgi:application",
                "--config",
                "deploy/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise AssertionError(f"gunicorn exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not answer /healthz:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
