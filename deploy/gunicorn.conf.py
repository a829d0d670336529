"""Gunicorn settings for the Caseloop web process.

    gunicorn caseloop.wsgi:application --config deploy/gunicorn.conf.py

Every value can be overridden from the environment (``WEB_CONCURRENCY``, ``WEB_THREADS``,
``WEB_TIMEOUT``, ``PORT``). Prometheus metrics from several worker processes are merged through
``PROMETHEUS_MULTIPROC_DIR`` (see deploy/README.md, "Metrics"): the directory is emptied when the
server starts, and a dead worker's live gauges are dropped when it exits.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
# Request lines are logged by caseloop.observability (JSON, with the request id); gunicorn's own
# access log would repeat them without the id.
accesslog = None
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
if os.environ.get("LOG_FORMAT", "json") == "json":
    # gunicorn's own lines (start, worker boot and exit) in the same JSON shape as the app's.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "caseloop.observability.RequestIdFilter"}},
        "formatters": {"json": {"()": "caseloop.observability.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": loglevel.upper(), "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": loglevel.upper(), "handlers": ["console"], "propagate": False},
        },
    }
# Workers are forked after the app is loaded; each opens its own database connections.
preload_app = False


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Files of a previous server would be summed into this one's counters.
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
