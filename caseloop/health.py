"""Liveness and readiness: ``/healthz``, ``/readyz`` and ``python -m caseloop.health``.

- ``/healthz`` answers while the process serves requests and touches no dependency, so a database
  outage never gets healthy web pods restarted (Kubernetes liveness).
- ``/readyz`` checks every dependency a request may need: the database, the Celery broker and, when
  ``VLLM_URL`` is set, the vLLM server. Any failure answers 503 naming the failed dependencies
  (Kubernetes readiness: the pod leaves the Service until they are back).
- ``python -m caseloop.health --check database --check broker`` runs the same checks for processes
  without HTTP (Celery workers, beat) and exits 1 naming what failed.

Each check runs in its own thread with a deadline (``READYZ_TIMEOUT`` seconds), so a dependency
that hangs instead of refusing is reported as failed in time. Error details go to the log, not to
the unauthenticated response.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    duration_ms: float
    error: str = ""  # the exception's class, or "timeout"

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {"ok": self.ok, "ms": round(self.duration_ms, 1)}
        if self.error:
            result["error"] = self.error
        return result


def check_database(timeout: float) -> None:
    from django.db import connections

    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # this thread's connection: never left open


def check_broker(timeout: float) -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return  # embedded: tasks run in this process
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def check_vllm(timeout: float) -> None:
    import httpx

    response = httpx.get(f"{settings.VLLM_URL.rstrip('/')}/health", timeout=timeout)
    response.raise_for_status()


CHECKS: dict[str, Callable[[float], None]] = {
    "database": check_database,
    "broker": check_broker,
    "vllm": check_vllm,
}


def configured_checks() -> list[str]:
    """The dependencies this deployment has: vLLM only when ``VLLM_URL`` is set."""
    return ["database", "broker", *(["vllm"] if settings.VLLM_URL else [])]


def run_checks(names: list[str], *, timeout: float | None = None) -> list[CheckResult]:
    """Run the named checks at the same time, each with ``timeout`` seconds to succeed."""
    timeout = settings.READYZ_TIMEOUT if timeout is None else timeout
    outcomes: dict[str, tuple[bool, str, float]] = {}

    def run(name: str) -> None:
        started = time.perf_counter()
        try:
            CHECKS[name](timeout)
        except Exception as exc:
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            outcomes[name] = (False, type(exc).__name__, time.perf_counter() - started)
        else:
            outcomes[name] = (True, "", time.perf_counter() - started)

    threads = [
        threading.Thread(target=run, args=(name,), daemon=True, name=f"check-{name}") for name in names
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, timeout + 0.5 - (time.perf_counter() - started)))
    results = []
    for name in names:
        if name in outcomes:
            ok, error, seconds = outcomes[name]
        else:
            logger.warning("readiness check %s did not finish within %.1fs", name, timeout)
            ok, error, seconds = False, "timeout", time.perf_counter() - started
        results.append(CheckResult(name, ok, seconds * 1000, error))
    return results


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = run_checks(configured_checks())
    failed = [result.name for result in results if not result.ok]
    body = {
        "status": "unavailable" if failed else "ok",
        "failed": failed,
        "checks": {result.name: result.as_dict() for result in results},
    }
    return JsonResponse(body, status=503 if failed else 200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m caseloop.health", description="Check that this process's dependencies answer."
    )
    parser.add_argument(
        "--check",
        action="append",
        choices=sorted(CHECKS),
        help="A dependency to check (repeatable); default: those /readyz checks.",
    )
    parser.add_argument("--timeout", type=float, help="Seconds per check (default READYZ_TIMEOUT).")
    args = parser.parse_args(argv)
    import django

    django.setup()
    results = run_checks(args.check or configured_checks(), timeout=args.timeout)
    failed = [result.name for result in results if not result.ok]
    print(json.dumps({"failed": failed, "checks": {r.name: r.as_dict() for r in results}}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
