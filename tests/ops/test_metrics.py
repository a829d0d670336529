"""/metrics: Prometheus exposition of request latency, queue depth, decisions, review backlog and
training progress; bearer-token protection; several gunicorn workers merged."""

from __future__ import annotations

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from caseloop.celery import app as celery_app
from tests.factories import decide_live_case, live_case_fields, make_actor, make_claims_workflow
from tests.ops.ops_processes import free_port, gunicorn_server, production_env
from training.models import JobStatus, TrainingJob
from training.services.jobs import training_job_launch
from workflows.models import DecisionStatus


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of one scrape, parsed by prometheus_client's parser."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.django_db
def test_request_latency_is_recorded_by_route_method_and_status(client, settings):
    settings.METRICS_TOKEN = ""
    before = (
        value(
            scrape(client),
            "caseloop_http_request_duration_seconds_count",
            route="healthz",
            method="GET",
            status="200",
        )
        or 0
    )
    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/page/")
    after = scrape(client)
    assert (
        value(
            after, "caseloop_http_request_duration_seconds_count", route="healthz", method="GET", status="200"
        )
        == before + 3
    )
    assert (
        value(
            after,
            "caseloop_http_request_duration_seconds_count",
            route="<unmatched>",
            method="GET",
            status="404",
        )
        >= 1
    )
    # Buckets are cumulative and end with +Inf.
    assert (
        value(
            after,
            "caseloop_http_request_duration_seconds_bucket",
            route="healthz",
            method="GET",
            status="200",
            le="+Inf",
        )
        == before + 3
    )


@pytest.mark.django_db
def test_a_metrics_token_is_required_when_configured(client, settings):
    settings.METRICS_TOKEN = "scrape-secret-123"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Basic c2NyYXBlLXNlY3JldC0xMjM=")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-123").status_code == 200


@pytest.mark.redis
@pytest.mark.django_db
def test_queue_depth_is_the_length_of_each_celery_queue_in_redis(client, settings):
    # A Redis database of its own, so other tests' queues do not count.
    url = "redis://127.0.0.1:6379/12"
    broker = redis.Redis.from_url(url)
    queues = [q.name for q in celery_app.conf.task_queues]
    keys = [name + suffix for name in queues for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")]
    broker.delete(*keys)
    try:
        broker.lpush("decisions", *[f"task-{i}" for i in range(5)])
        broker.lpush("decisions\x06\x166", "urgent-1", "urgent-2")  # a priority list of the same queue
        broker.lpush("training", "job-1")
        settings.CELERY_BROKER_URL = url
        settings.METRICS_TOKEN = ""
        samples = scrape(client)
    finally:
        broker.delete(*keys)
    assert value(samples, "caseloop_celery_queue_length", queue="decisions") == 7
    assert value(samples, "caseloop_celery_queue_length", queue="training") == 1
    assert value(samples, "caseloop_celery_queue_length", queue="default") == 0
    assert value(samples, "caseloop_metrics_source_up", source="broker") == 1


@pytest.mark.django_db
def test_an_unreachable_broker_is_reported_without_failing_the_scrape(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.METRICS_TOKEN = ""
    samples = scrape(client)
    assert value(samples, "caseloop_metrics_source_up", source="broker") == 0
    assert value(samples, "caseloop_metrics_source_up", source="database") == 1
    assert not [key for key in samples if key[0] == "caseloop_celery_queue_length"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_decisions_review_backlog_and_training_progress_are_read_from_the_database(client, settings):
    settings.METRICS_TOKEN = ""
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor, cases=40)  # supervised: every decision waits for review
    for fields in live_case_fields(workflow, count=3):
        decide_live_case(actor, workflow, fields)
    job = training_job_launch(
        actor=actor, workflow=workflow, config={"ppo": {"total_updates": 10}}, enqueue=False
    )
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, progress=0.4)

    samples = scrape(client)
    proposed = {labels: v for (name, labels), v in samples.items() if name == "caseloop_decisions_total"}
    assert sum(proposed.values()) == 3
    assert value(samples, "caseloop_decisions_by_status", status=DecisionStatus.PENDING_REVIEW) == 3
    assert value(samples, "caseloop_decisions_by_status", status=DecisionStatus.EXECUTED) == 0
    assert value(samples, "caseloop_review_backlog", organization=actor.organization.slug) == 3
    assert value(samples, "caseloop_review_oldest_age_seconds", organization=actor.organization.slug) >= 0
    assert value(samples, "caseloop_training_job_progress", job=str(job.pk), workflow=workflow.slug) == 0.4
    assert value(samples, "caseloop_metrics_source_up", source="database") == 1


@pytest.mark.slow
def test_several_gunicorn_workers_are_merged_through_the_multiprocess_directory(tmp_path):
    env = production_env(
        SECURE_SSL_REDIRECT="0", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"), METRICS_TOKEN="t0ken"
    )
    with (
        gunicorn_server(env, workers=2, log_path=tmp_path / "gunicorn.log") as base,
        httpx.Client(base_url=base, headers={"Connection": "close"}) as http,
    ):
        for _ in range(20):
            assert http.get("/healthz").status_code == 200
        scrapes = [http.get("/metrics", headers={"Authorization": "Bearer t0ken"}) for _ in range(4)]
    counts = []
    for response in scrapes:
        assert response.status_code == 200
        samples = parse(response.text)
        counts.append(
            value(
                samples,
                "caseloop_http_request_duration_seconds_count",
                route="healthz",
                method="GET",
                status="200",
            )
        )
    # Every scrape, whichever worker answers it, sees the requests both workers served: all 20 (plus
    # the startup wait's probes, one of which may finish late after a client-side timeout).
    assert min(counts) >= 20 and max(counts) - min(counts) <= 2, counts
    assert len(list((tmp_path / "prometheus").glob("histogram_*.db"))) == 2  # one file per worker
