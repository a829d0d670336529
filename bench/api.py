"""REST API throughput and latency on gunicorn, PostgreSQL, Redis and real Celery workers.

    .venv/bin/python bench/api.py            # PostgreSQL and Redis on 127.0.0.1 (see --help)

In one run, against one gunicorn server (``deploy/gunicorn.conf.py``, sync workers, the same worker
count throughout) on a scratch database:

1. ``GET /api/v1/ping``: the authenticated no-op (API key lookup, throttle counter in Redis, JSON):
   the baseline;
2. ``POST /api/v1/cases?decide=sync``: a live claim validated, stored, audited and decided within
   the request by the production policy — a neural (MLP) policy trained here with a short PPO run
   and promoted to supervised — with its run, steps, decision, routing and audit events;
3. ``POST /api/v1/cases`` (queued): the same cases queued for real Celery workers on the
   ``decisions`` queue; the submission is timed by the client, the decisions end to end (case
   stored to decision stored) from the database.

Each phase is a closed loop of ``--concurrency`` clients for ``--seconds`` (after a warm-up); POSTs
carry an ``Idempotency-Key``, as the Python client sends. Printed: throughput, p50 and p99, and the
sync path against the no-op. Target: sync throughput at least 40 % of the no-op's, with p99 under
100 ms at that load.

The scratch database (``--database``) is created, migrated and dropped; Redis database
``--redis-db`` is flushed before and after (it holds the broker queue and the throttle counters).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SYNC_TARGET = 0.40
P99_TARGET_MS = 100.0


@dataclass
class Phase:
    name: str
    latencies_s: list[float]
    errors: int
    elapsed_s: float
    statuses: dict[int, int]
    samples: list[str]  # the first few failed answers

    @property
    def throughput(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def line(self) -> str:
        text = (
            f"{self.name:<28} {self.throughput:8.1f} req/s   p50 {self.percentile_ms(0.5):7.1f} ms   "
            f"p99 {self.percentile_ms(0.99):7.1f} ms   ({len(self.latencies_s)} ok, {self.errors} errors)"
        )
        failed = {code: n for code, n in self.statuses.items() if not 200 <= code < 300}
        if failed:
            text += f"\n    failed answers by status (0: no answer): {failed}; first: {self.samples[:2]}"
        return text


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL."
    )
    parser.add_argument("--database", default="caseloop_bench_api", help="Scratch database (dropped).")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server URL.")
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database, flushed before and after.")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (sync), for every phase.")
    parser.add_argument(
        "--decision-workers", type=int, default=2, help="Celery worker processes (decisions)."
    )
    parser.add_argument("--concurrency", type=int, default=4, help="Concurrent clients per phase.")
    parser.add_argument("--seconds", type=float, default=15.0, help="Measured seconds per phase.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Unmeasured seconds before each phase.")
    parser.add_argument("--cases", type=int, default=300, help="Generated labelled cases to train on.")
    parser.add_argument("--train-updates", type=int, default=40, help="PPO updates of the policy.")
    parser.add_argument("--no-idempotency-keys", action="store_true", help="POST without Idempotency-Key.")
    parser.add_argument("--profile", type=int, default=0, help="Only profile N sync creates in-process.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    return parser.parse_args()


# --------------------------------------------------------------------------- set-up


def _admin_conn(server: str) -> dict[str, Any]:
    import dj_database_url

    parsed = dj_database_url.parse(f"{server.rstrip('/')}/postgres")
    return {
        "host": parsed["HOST"] or "127.0.0.1",
        "port": parsed["PORT"] or 5432,
        "user": parsed["USER"],
        "password": parsed["PASSWORD"] or None,
        "dbname": "postgres",
    }


def _recreate(admin: dict[str, Any], name: str, *, create: bool = True) -> None:
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _environment(args: argparse.Namespace, artifacts: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"{args.server.rstrip('/')}/{args.database}",
        "CELERY_BROKER_URL": f"{args.redis.rstrip('/')}/{args.redis_db}",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "SECRET_KEY": "caseloop-bench-secret-key-not-for-production",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "API_RATE_LIMIT": "100000000/min",  # the bench measures the API, not its limit
        "LOG_LEVEL": "WARNING",
        # One intra-op thread per process: for these small nets more threads only contend for the
        # cores with the other workers (a 64-unit MLP's backward pass took 25x longer with two).
        "OMP_NUM_THREADS": "1",
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback: TLS ends at a proxy in production
        "ARTIFACT_DIR": artifacts,
        "DJANGO_SETTINGS_MODULE": "caseloop.settings",
    }


def seed(args: argparse.Namespace) -> dict[str, Any]:
    """Organisation, API key, claims workflow with cases, a PPO-trained MLP policy in production."""
    from django.core.management import call_command

    from caseloop.accounts.models import Role
    from caseloop.accounts.permissions import SCOPES
    from caseloop.accounts.services import api_key_create
    from tests.factories import live_case_fields, make_actor, make_claims_workflow, make_organization
    from training.models import PolicyKind
    from training.services import policy_version_promote
    from training.services.jobs import training_job_launch, training_job_run

    call_command("migrate", verbosity=0)
    admin = make_actor(make_organization("Bench"), Role.ADMIN)
    workflow, _ = make_claims_workflow(admin, cases=args.cases)
    started = time.monotonic()
    config = {
        "ppo": {
            "total_updates": args.train_updates,
            "num_envs": 32,
            "rollout_steps": 8,
            "minibatches": 4,
            "hidden_size": 64,
            "checkpoint_every": args.train_updates,
        },
        "evaluate_limit": 30,
    }
    job = training_job_launch(actor=admin, workflow=workflow, config=config, enqueue=False)
    job = training_job_run(job_id=job.pk)
    assert job is not None and job.status == "succeeded", job and job.error
    version = job.result_version
    assert version.policy.kind == PolicyKind.MLP
    policy_version_promote(actor=admin, version=version, stage="supervised", force=True, reason="bench")
    trained_s = time.monotonic() - started
    _, secret = api_key_create(actor=admin, name="bench", scopes=list(SCOPES))
    return {
        "secret": secret,
        "workflow": workflow.pk,
        "version": f"{version} (artifact {version.artifact_hash[:12]}…)",
        "trained_s": trained_s,
        "score": (job.result_version.evaluations.filter(split="validation").first().metrics or {}).get(
            "score/mean"
        ),
        "fields": live_case_fields(workflow, seed=1234, count=200),
    }


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(args: argparse.Namespace, env: dict[str, str], port: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "caseloop.wsgi:application",
        "--config",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    server_env = {**os.environ, **env, "WEB_CONCURRENCY": str(args.workers), "WEB_THREADS": "1"}
    server_env["WEB_MAX_REQUESTS"] = "0"  # no worker recycling in the middle of a phase
    return subprocess.Popen(
        command, cwd=ROOT, env=server_env, stdout=subprocess.DEVNULL, start_new_session=True
    )


def start_celery(args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "caseloop",
        "worker",
        "-Q",
        "decisions",
        "-c",
        str(args.decision_workers),
        "-n",
        f"bench-decisions-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]
    return subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, start_new_session=True
    )


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until_up(base: str, secret: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/api/v1/ping", headers={"Authorization": f"Bearer {secret}"}).is_success:
                return
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within a minute")


# --------------------------------------------------------------------------- load


def run_load(
    name: str,
    base: str,
    secret: str,
    request: Any,
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    keep: list[Any] | None = None,
) -> Phase:
    """``concurrency`` closed-loop clients call ``request(client, i)`` for warm-up + ``seconds``;
    only requests started and finished in the measured window count."""
    start_at = time.monotonic() + warmup
    stop_at = start_at + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    samples: list[str] = []
    errors = 0
    lock = threading.Lock()

    def client_loop(worker: int) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            i = worker
            while True:
                began = time.monotonic()
                if began >= stop_at:
                    return
                try:
                    response = request(client, i)
                    code = response.status_code
                    if not 200 <= code < 300 and len(samples) < 5:
                        samples.append(f"{code} {response.text[:300]}")
                except httpx.HTTPError as exc:
                    code = 0
                    if len(samples) < 5:
                        samples.append(f"{type(exc).__name__}: {exc}")
                ended = time.monotonic()
                i += concurrency
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                    if began < start_at or ended > stop_at:
                        continue
                    if 200 <= code < 300:
                        latencies.append(ended - began)
                        if keep is not None:
                            keep.append(response.json())
                    else:
                        errors += 1

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Phase(name, latencies, errors, seconds, statuses, samples)


def post_case(fields: list[dict], workflow: int, *, sync: bool, keys: bool):
    def request(client: httpx.Client, i: int) -> httpx.Response:
        headers = {} if not keys else {"Idempotency-Key": str(uuid.uuid4())}
        body = {
            "workflow": workflow,
            "fields": fields[i % len(fields)],
            "external_id": f"bench-{uuid.uuid4().hex[:12]}",
        }
        return client.post(
            "/api/v1/cases", params={"decide": "sync"} if sync else None, json=body, headers=headers
        )

    return request


def queued_decisions(case_ids: list[int], timeout: float) -> tuple[list[float], float, int]:
    """Wait for the workers to decide ``case_ids``; (end-to-end seconds each, decisions/s, undecided)."""
    from workflows.models import Case, CaseStatus, Decision

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Case.objects.filter(pk__in=case_ids, status=CaseStatus.QUEUED).exists():
            break
        time.sleep(0.5)
    created = dict(Case.objects.filter(pk__in=case_ids).values_list("pk", "created_at"))
    decided = dict(
        Decision.objects.filter(case_id__in=case_ids, status__in=["pending_review", "executed"]).values_list(
            "case_id", "created_at"
        )
    )
    e2e = [(decided[pk] - created[pk]).total_seconds() for pk in decided]
    span = (max(decided.values()) - min(created.values())).total_seconds() if decided else 0.0
    return e2e, (len(decided) / span if span else 0.0), len(case_ids) - len(decided)


def percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- profile


def profile_sync(seeded: dict[str, Any], count: int) -> None:
    """cProfile of ``count`` sync creates through the whole Django stack, in this process."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {seeded['secret']}")

    def create(i: int):
        body = {"workflow": seeded["workflow"], "fields": seeded["fields"][i % 200]}
        response = client.post("/api/v1/cases?decide=sync", body, content_type="application/json")
        assert response.status_code == 201, response.content

    for i in range(5):
        create(i)
    started = time.perf_counter()
    for _ in range(count):
        assert client.get("/api/v1/ping").status_code == 200
    ping_ms = 1000 * (time.perf_counter() - started) / count
    started = time.perf_counter()
    for i in range(count):
        create(i)
    sync_ms = 1000 * (time.perf_counter() - started) / count
    print(
        f"in-process, one at a time: ping {ping_ms:.1f} ms, sync create {sync_ms:.1f} ms "
        f"({ping_ms / sync_ms:.1%})"
    )
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        create(count)
    print(f"queries of one sync create: {len(queries.captured_queries)}")
    for query in queries.captured_queries:
        print("   ", query["sql"][:150])
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i in range(count):
        create(i)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{count} sync creates in-process: {1000 * elapsed / count:.1f} ms each (profiled)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


# --------------------------------------------------------------------------- main


def main() -> int:
    args = parse_args()
    admin = _admin_conn(args.server)
    _recreate(admin, args.database)
    artifacts = tempfile.mkdtemp(prefix="caseloop-bench-api-")
    env = _environment(args, artifacts)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django
    import redis

    django.setup()
    broker = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    broker.flushdb()
    server = celery = None
    try:
        print("Setting up: migrate, claims workflow and cases, PPO training of an MLP policy …", flush=True)
        seeded = seed(args)
        print(
            f"  production policy: {seeded['version']}, trained in {seeded['trained_s']:.0f} s, "
            f"validation score {seeded['score']:.3f}"
        )
        from django.db import connections

        if args.profile:
            profile_sync(seeded, args.profile)
            return 0
        connections.close_all()
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_gunicorn(args, env, port)
        wait_until_up(base, seeded["secret"], server)
        keys = not args.no_idempotency_keys
        common = {"concurrency": args.concurrency, "seconds": args.seconds, "warmup": args.warmup}
        print(
            f"Load: {args.concurrency} concurrent clients, {args.warmup:g} s warm-up + {args.seconds:g} s "
            f"measured per phase; gunicorn {args.workers} sync workers; "
            f"{'with' if keys else 'without'} Idempotency-Key on POSTs\n",
            flush=True,
        )

        ping = run_load(
            "GET ping (no-op)", base, seeded["secret"], lambda c, i: c.get("/api/v1/ping"), **common
        )
        print(ping.line(), flush=True)
        sync_bodies: list[dict] = []
        sync = run_load(
            "POST cases?decide=sync",
            base,
            seeded["secret"],
            post_case(seeded["fields"], seeded["workflow"], sync=True, keys=keys),
            keep=sync_bodies,
            **common,
        )
        print(sync.line(), flush=True)
        decided = sum(1 for body in sync_bodies if body.get("decision"))

        # The sync phase's cases were queued on commit too (the worker would find them decided):
        # drop those messages so the queued phase measures its own cases only.
        broker.delete("decisions")
        celery = start_celery(args, env)
        time.sleep(3)  # the worker connects to the broker before the phase starts
        queued_bodies: list[dict] = []
        queued = run_load(
            "POST cases (queued)",
            base,
            seeded["secret"],
            post_case(seeded["fields"], seeded["workflow"], sync=False, keys=keys),
            keep=queued_bodies,
            **common,
        )
        print(queued.line(), flush=True)
        e2e, decisions_per_s, undecided = queued_decisions([b["id"] for b in queued_bodies], timeout=300)

        ratio = sync.throughput / ping.throughput if ping.throughput else 0.0
        p99 = sync.percentile_ms(0.99)
        print()
        print(f"sync path: {decided}/{len(sync_bodies)} responses carried their decision")
        print(f"queued path through {args.decision_workers} Celery worker process(es) on 'decisions':")
        print(
            f"  decided {len(e2e)} of {len(queued_bodies)} ({undecided} left), "
            f"{decisions_per_s:.1f} decisions/s"
        )
        print(
            f"  case stored -> decision stored: p50 {percentile_ms(e2e, 0.5):.0f} ms, "
            f"p99 {percentile_ms(e2e, 0.99):.0f} ms"
        )
        print(
            f"  submission: {queued.throughput / ping.throughput:.0%} of the no-op throughput, "
            f"p99 {queued.percentile_ms(0.99):.1f} ms"
        )
        print()
        print(f"sync / no-op throughput: {ratio:.0%} (target >= {SYNC_TARGET:.0%})")
        print(f"sync p99 at that load:   {p99:.1f} ms (target < {P99_TARGET_MS:.0f} ms)")
        print(f"sync p50 / no-op p50:    {sync.percentile_ms(0.5) / ping.percentile_ms(0.5):.1f}x")
        ok = ratio >= SYNC_TARGET and p99 < P99_TARGET_MS and decided == len(sync_bodies)
        print("TARGET MET" if ok else "TARGET MISSED")
        return 0 if ok else 1
    finally:
        stop(celery)
        stop(server)
        from django.db import connections

        connections.close_all()
        broker.flushdb()
        if not args.keep:
            _recreate(admin, args.database, create=False)


if __name__ == "__main__":
    raise SystemExit(main())
