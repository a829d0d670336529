"""Request ids and structured logs, from the web request to the Celery task and its audit events.

- :class:`RequestIdMiddleware` takes the request id from ``X-Request-ID`` (when it is a sane token)
  or makes one, keeps it in a context variable for the request, echoes it in the response's
  ``X-Request-ID`` and logs one ``request`` line per request (method, path, route, status, ms).
- :class:`RequestIdFilter` puts the current id on every log record and :class:`JsonFormatter`
  writes one JSON object per line (settings ``LOGGING``; ``LOG_FORMAT=text`` for people).
- :func:`connect_celery_signals` carries the id into tasks: ``before_task_publish`` adds it to the
  message headers of a task queued during a request, ``task_prerun`` sets it in the worker for the
  task's duration and ``task_postrun`` restores what was there. ``audit_record`` reads it, so the
  audit events a task writes name the request that started it.
"""

from __future__ import annotations

import logging
import logging.config
import re
import time
import uuid
from contextvars import ContextVar, Token
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
# The Celery message header; also the attribute of ``task.request`` in the worker.
TASK_HEADER = "caseloop_request_id"
MAX_REQUEST_ID_LENGTH = 64  # AuditEvent.request_id's length
_SANE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")
# Probes and scrapes are logged at DEBUG: every ten seconds from every kubelet is noise, not news.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

request_id_var: ContextVar[str] = ContextVar("caseloop_request_id", default="")
logger = logging.getLogger("caseloop.request")
task_logger = logging.getLogger("caseloop.task")


def current_request_id() -> str:
    """The id of the request (or of the request that queued the task) being handled; "" outside one."""
    return request_id_var.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(raw: str | None) -> str | None:
    """``raw`` if it is a usable id (1 to 64 letters, digits or ``._:-``), else None: a client's header
    goes into logs and the audit trail, so nothing else gets through."""
    if raw and _SANE_ID.fullmatch(raw):
        return raw
    return None


class RequestIdMiddleware:
    """Outermost middleware: every log line of the request, and the response, carry its id."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request_id = clean_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            response[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            match = getattr(request, "resolver_match", None)
            logger.log(
                logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO,
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": match.view_name if match else "",
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)


def configure_logging(config: dict[str, Any]) -> None:
    """Settings' ``LOGGING_CONFIG``: apply ``LOGGING`` and route Python warnings through it, so even a
    library's warning is a JSON line with the request id rather than a bare line on stderr."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (empty outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: timestamp (ISO 8601, UTC), level, logger, message, request_id, and
    whatever ``extra`` the call passed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s %(request_id)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        super().__init__(*args, **kwargs)


# ---- Celery: the request id travels in the task's message headers

_task_tokens: dict[str, Token[str]] = {}


def _add_request_id_header(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def _enter_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request_id = clean_request_id(getattr(task.request, TASK_HEADER, None)) if task is not None else None
    if request_id and task_id:
        _task_tokens[task_id] = request_id_var.set(request_id)
    task_logger.info("task started", extra={"task": getattr(task, "name", ""), "task_id": task_id})


def _leave_task(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    task_logger.info(
        "task finished", extra={"task": getattr(task, "name", ""), "task_id": task_id, "state": state}
    )
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        request_id_var.reset(token)


def connect_celery_signals() -> None:
    """Connect the handlers (idempotent: ``dispatch_uid``). Called by ``caseloop.celery``, which both
    the web process (publishing) and the workers (running tasks) import."""
    from celery.signals import before_task_publish, task_postrun, task_prerun

    before_task_publish.connect(_add_request_id_header, weak=False, dispatch_uid="caseloop-request-id")
    task_prerun.connect(_enter_task, weak=False, dispatch_uid="caseloop-request-id")
    task_postrun.connect(_leave_task, weak=False, dispatch_uid="caseloop-request-id")
