"""Prometheus metrics at ``/metrics``.

- ``caseloop_http_request_duration_seconds{route,method,status}``: a histogram observed by
  :class:`RequestMetricsMiddleware` for every request (``route`` is the URL name, so ids in paths
  never multiply the series).
- Read at scrape time by :class:`CaseloopCollector`, so every replica reports the same figures and a
  restarted worker loses nothing: ``caseloop_celery_queue_length{queue}`` (Redis ``LLEN`` of each
  Celery queue, priority lists included), ``caseloop_decisions_total{decision}``,
  ``caseloop_decisions_by_status{status}``, ``caseloop_review_backlog{organization}``,
  ``caseloop_review_oldest_age_seconds{organization}`` and
  ``caseloop_training_job_progress{job,workflow}`` for running jobs. A source that cannot be read
  (database or broker down) is reported by ``caseloop_metrics_source_up{source}`` = 0 instead of
  failing the scrape.

With ``METRICS_TOKEN`` set the endpoint wants ``Authorization: Bearer <token>``. Under gunicorn with
several workers set ``PROMETHEUS_MULTIPROC_DIR`` (deploy/README.md, "Metrics"): each worker process
writes its samples there and a scrape merges them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

REQUEST_LATENCY = Histogram(
    "caseloop_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL name, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
UNMATCHED_ROUTE = "<unmatched>"  # no URL pattern matched (404s, redirects before routing, static files)
# kombu's Redis transport keeps priorities 3, 6 and 9 of a queue in lists named "<queue>\x06\x16<n>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class RequestMetricsMiddleware:
    """Observes every request's latency (right after RequestIdMiddleware, so all others count)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        status = "500"
        try:
            response = self.get_response(request)
            status = str(response.status_code)
            return response
        finally:
            match = getattr(request, "resolver_match", None)
            REQUEST_LATENCY.labels(
                route=(match.view_name if match else UNMATCHED_ROUTE),
                method=request.method if request.method in _METHODS else "OTHER",
                status=status,
            ).observe(time.perf_counter() - started)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class CaseloopCollector(Collector):
    """Figures read from Redis and PostgreSQL when Prometheus scrapes."""

    def describe(self) -> list[Metric]:
        # Without this the registry would call collect() when the collector is registered, at import
        # time, querying the database before the process serves anything.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "caseloop_metrics_source_up",
            "Whether a source of these metrics could be read.",
            labels=["source"],
        )
        for source, collect in (("broker", self._queues), ("database", self._database)):
            try:
                families = list(collect())
            except Exception as exc:
                logger.warning("metrics: cannot read the %s: %s: %s", source, type(exc).__name__, exc)
                up.add_metric([source], 0)
            else:
                up.add_metric([source], 1)
                yield from families
        yield up

    def _queues(self) -> Iterator[Metric]:
        from caseloop.celery import app

        family = GaugeMetricFamily(
            "caseloop_celery_queue_length", "Tasks waiting in a Celery queue (Redis LLEN).", labels=["queue"]
        )
        url = settings.CELERY_BROKER_URL
        if url.startswith("redis"):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            try:
                names = [queue.name for queue in app.conf.task_queues]
                with client.pipeline(transaction=False) as pipe:
                    for name in names:
                        for suffix in _PRIORITY_SUFFIXES:
                            pipe.llen(name + suffix)
                    lengths = pipe.execute()
            finally:
                client.close()
            step = len(_PRIORITY_SUFFIXES)
            for i, name in enumerate(names):
                family.add_metric([name], sum(lengths[i * step : (i + 1) * step]))
        yield family

    def _database(self) -> Iterator[Metric]:
        from django.db.models import Count, Min
        from django.db.models.functions import Coalesce
        from django.utils import timezone

        from training.models import JobStatus, TrainingJob
        from workflows.models import Decision, DecisionStatus

        decisions = Decision.objects.order_by()
        total = CounterMetricFamily(
            "caseloop_decisions", "Decisions proposed by policies, by decision.", labels=["decision"]
        )
        for row in decisions.values("name").annotate(n=Count("id")):
            total.add_metric([row["name"]], row["n"])
        yield total

        by_status = GaugeMetricFamily(
            "caseloop_decisions_by_status", "Decisions by current status.", labels=["status"]
        )
        counts = {row["status"]: row["n"] for row in decisions.values("status").annotate(n=Count("id"))}
        for status in DecisionStatus.values:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status

        backlog = GaugeMetricFamily(
            "caseloop_review_backlog", "Decisions waiting for a reviewer.", labels=["organization"]
        )
        oldest = GaugeMetricFamily(
            "caseloop_review_oldest_age_seconds",
            "Age of the oldest decision waiting for a reviewer.",
            labels=["organization"],
        )
        now = timezone.now()
        pending = (
            decisions.filter(status=DecisionStatus.PENDING_REVIEW)
            .values("organization__slug")
            .annotate(n=Count("id"), since=Min(Coalesce("review_requested_at", "created_at")))
        )
        for row in pending:
            backlog.add_metric([row["organization__slug"]], row["n"])
            oldest.add_metric([row["organization__slug"]], max(0.0, (now - row["since"]).total_seconds()))
        yield backlog
        yield oldest

        progress = GaugeMetricFamily(
            "caseloop_training_job_progress",
            "Progress (0..1) of running training jobs.",
            labels=["job", "workflow"],
        )
        running = TrainingJob.objects.filter(status=JobStatus.RUNNING).values(
            "id", "workflow__slug", "progress"
        )
        for job in running:
            progress.add_metric([str(job["id"]), job["workflow__slug"]], job["progress"])
        yield progress


_COLLECTOR = CaseloopCollector()
REGISTRY.register(_COLLECTOR)


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # every gunicorn worker's samples, merged
    registry.register(_COLLECTOR)
    return registry


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if token and not constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}"):
        response = HttpResponse(
            "A bearer token is required for /metrics.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
