"""Sustained case submissions against the production stack, and a check that nothing was lost.

    .venv/bin/python bench/load.py                      # 8 cases/s for 3 minutes (see --help)
    .venv/bin/python bench/load.py --rate 20 --seconds 60

The stack is the production one, on this machine: gunicorn (``deploy/gunicorn.conf.py``) serving
the REST API, real Celery ``decisions`` workers (prefork, ``acks_late``) on Redis, PostgreSQL, on a
scratch database that is created, seeded (an organisation, an API key, the claims workflow with the
expert-rules policy in production, supervised) and dropped.

The load is open-loop: case ``i`` is submitted at ``start + i / rate`` whatever happened to the
ones before (``POST /api/v1/cases`` with an ``Idempotency-Key``), so a slow server is seen as
latency and backlog, not hidden by clients waiting politely. Latency is measured from each
request's scheduled time.

At the end, once the workers have drained the queue, it checks and prints:

- every accepted case (201) ended with exactly one decision, and no submission made two cases;
- each decided case's audit trail is complete (``case.created``, one event per step of its run,
  the decision's routing event) and the organisation's chain verifies (``audit_verify``);
- no 5xx answers;
- the sustained submission rate, p50/p99 latency, decisions per second and the end-to-end time
  from case stored to decision stored.

Exit status 0 when every check holds. ``bench/faults.py`` runs this load while breaking things.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- settings and set-up


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=8.0, help="Case submissions per second (open loop).")
    parser.add_argument("--seconds", type=float, default=180.0, help="Seconds of load.")
    parser.add_argument(
        "--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL."
    )
    parser.add_argument("--database", default="caseloop_bench_load", help="Scratch database (dropped).")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server URL.")
    parser.add_argument("--redis-db", type=int, default=11, help="Redis database (flushed before and after).")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes.")
    parser.add_argument("--worker-instances", type=int, default=2, help="Celery decisions worker instances.")
    parser.add_argument("--concurrency", type=int, default=1, help="Processes per Celery worker instance.")
    parser.add_argument("--clients", type=int, default=64, help="Client threads (most requests in flight).")
    parser.add_argument("--retries", type=int, default=0, help="Client retries of a failed POST (same key).")
    parser.add_argument("--drain", type=float, default=180.0, help="Seconds to wait for the queue to drain.")
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=60,
        help="Broker visibility timeout (s): when a killed worker's unacknowledged tasks are redelivered.",
    )
    parser.add_argument(
        "--beat", action="store_true", help="Also run Celery beat and a default-queue worker (the schedules)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")


@dataclass
class Stack:
    """The processes of one run and what they need to know."""

    args: argparse.Namespace
    env: dict[str, str]
    base: str = ""
    secret: str = ""
    workflow_id: int = 0
    organization_id: int = 0
    fields: list[dict[str, Any]] = field(default_factory=list)
    web: subprocess.Popen | None = None
    workers: list[subprocess.Popen | None] = field(default_factory=list)
    scheduling: list[subprocess.Popen] = field(default_factory=list)  # beat and its default-queue worker
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="caseloop-load-")))

    # ---- lifecycle

    @classmethod
    def create(cls, args: argparse.Namespace) -> Stack:
        _recreate_database(args.server, args.database)
        env = {
            "DATABASE_URL": f"{args.server.rstrip('/')}/{args.database}",
            "CELERY_BROKER_URL": f"{args.redis.rstrip('/')}/{args.redis_db}",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_VISIBILITY_TIMEOUT": str(args.visibility_timeout),
            "SECRET_KEY": "caseloop-load-bench-secret-key-not-for-production-0123456789",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "API_RATE_LIMIT": "100000000/min",  # the bench loads the service, not its throttle
            "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback; TLS ends at a proxy in production
            "LOG_LEVEL": "WARNING",
            "ARTIFACT_DIR": tempfile.mkdtemp(prefix="caseloop-load-artifacts-"),
            "DJANGO_SETTINGS_MODULE": "caseloop.settings",
        }
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import redis

        redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()
        import django

        django.setup()
        stack = cls(args=args, env=env)
        stack.seed()
        return stack

    def seed(self) -> None:
        from django.core.management import call_command

        from caseloop.accounts.models import Role
        from caseloop.accounts.permissions import SCOPES
        from caseloop.accounts.services import api_key_create
        from tests.factories import live_case_fields, make_actor, make_claims_workflow, make_organization

        call_command("migrate", verbosity=0)
        admin = make_actor(make_organization("Load"), Role.ADMIN)
        workflow, _ = make_claims_workflow(admin, production_stage="supervised")
        _, self.secret = api_key_create(actor=admin, name="load", scopes=list(SCOPES))
        self.workflow_id, self.organization_id = workflow.pk, admin.organization.pk
        self.fields = live_case_fields(workflow, seed=4321, count=500)

    def start(self) -> None:
        self.start_web()
        self.workers = [self.start_worker(i) for i in range(self.args.worker_instances)]
        if self.args.beat:
            self.scheduling = [
                self.start_celery("beat", "beat", "--schedule", str(self.logs / "beat-schedule")),
                self.start_celery(
                    "default-worker",
                    *("worker", "-Q", "default", "--concurrency", "1"),
                    *("-n", f"load-default-{os.getpid()}@%h"),
                ),
            ]
        wait_for(lambda: self.ping() == 200, 90, "gunicorn to answer")

    def start_web(self) -> None:
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **self.env,
            "WEB_CONCURRENCY": str(self.args.web_workers),
            "WEB_THREADS": "4",
            "WEB_MAX_REQUESTS": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(self.logs / "prometheus"),
        }
        command = [
            *(sys.executable, "-m", "gunicorn", "caseloop.wsgi:application"),
            *("--config", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"),
        ]
        log = (self.logs / "web.log").open("ab")
        self.web = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_worker(self, index: int) -> subprocess.Popen:
        command = [
            *(sys.executable, "-m", "celery", "-A", "caseloop", "worker", "-Q", "decisions"),
            *("--concurrency", str(self.args.concurrency), "-n", f"load-decisions-{index}-{os.getpid()}@%h"),
            *("--without-gossip", "--without-mingle", "-l", "WARNING"),
        ]
        log = (self.logs / f"worker-{index}.log").open("ab")
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_celery(self, log_name: str, *arguments: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "celery", "-A", "caseloop", *arguments, "-l", "WARNING"]
        log = (self.logs / f"{log_name}.log").open("ab")
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        for process in [self.web, *self.workers, *self.scheduling]:
            stop_process(process)

    def drop(self) -> None:
        if not self.args.keep:
            from django.db import connections

            connections.close_all()
            _recreate_database(self.args.server, self.args.database, create=False)
            import redis

            with contextlib.suppress(Exception):
                redis.Redis.from_url(self.env["CELERY_BROKER_URL"]).flushdb()

    def ping(self) -> int:
        try:
            return httpx.get(f"{self.base}/api/v1/ping", headers=self.auth, timeout=5).status_code
        except httpx.HTTPError:
            return 0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def _recreate_database(server: str, name: str, *, create: bool = True) -> None:
    import dj_database_url

    parsed = dj_database_url.parse(f"{server.rstrip('/')}/postgres")
    admin = {
        "host": parsed["HOST"] or "127.0.0.1",
        "port": parsed["PORT"] or 5432,
        "user": parsed["USER"],
        "password": parsed["PASSWORD"] or None,
        "dbname": "postgres",
    }
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held; raises SystemExit after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)
    return time.monotonic() - started


# --------------------------------------------------------------------------- load


@dataclass
class Attempt:
    scheduled: float  # seconds from the start of the load
    sent: float
    done: float
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)
    error: str = ""


@dataclass
class Submission:
    index: int
    external_id: str
    attempts: list[Attempt] = field(default_factory=list)
    case_id: int | None = None  # from the 201 answer

    @property
    def accepted(self) -> bool:
        return self.case_id is not None

    @property
    def final_status(self) -> int:
        return self.attempts[-1].status if self.attempts else -1


def run_load(stack: Stack, *, rate: float, seconds: float, retries: int = 0, clients: int = 64,
             on_tick: Callable[[float], None] | None = None) -> tuple[list[Submission], float]:  # fmt: skip
    """Submit ``rate * seconds`` cases open-loop; returns the submissions and the load's start time
    (``time.monotonic()``). ``on_tick(elapsed)`` is called about every 0.1 s from the scheduler."""
    run = uuid.uuid4().hex[:8]
    total = int(rate * seconds)
    submissions = [Submission(i, f"load-{run}-{i:06d}") for i in range(total)]
    local = threading.local()
    started = time.monotonic()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=stack.base, headers=stack.auth, timeout=30)
        return local.client

    def submit(submission: Submission, scheduled: float) -> None:
        body = {
            "workflow": stack.workflow_id,
            "fields": stack.fields[submission.index % len(stack.fields)],
            "external_id": submission.external_id,
        }
        headers = {"Idempotency-Key": submission.external_id}  # the same key on every retry
        for attempt in range(retries + 1):
            sent = time.monotonic() - started
            try:
                response = client().post("/api/v1/cases", json=body, headers=headers)
                status, error = response.status_code, ""
                if status == 201:
                    submission.case_id = int(response.json()["id"])
            except httpx.HTTPError as exc:
                status, error = 0, type(exc).__name__
            submission.attempts.append(Attempt(scheduled, sent, time.monotonic() - started, status, error))
            if status < 500 and status != 0:
                return
            if attempt < retries:
                time.sleep(min(2.0, 0.25 * 2**attempt))

    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
        next_tick = 0.0
        for submission in submissions:
            scheduled = submission.index / rate
            while (now := time.monotonic() - started) < scheduled:
                if on_tick is not None and now >= next_tick:
                    on_tick(now)
                    next_tick = now + 0.1
                time.sleep(min(0.01, scheduled - now))
            pool.submit(submit, submission, scheduled)
        while on_tick is not None and pool._work_queue.qsize() > 0:  # let faults finish their timeline
            on_tick(time.monotonic() - started)
            time.sleep(0.1)
    return submissions, started


# --------------------------------------------------------------------------- checks


@dataclass
class Verdict:
    accepted: int
    submitted: int
    undecided: list[int]
    decided_twice: list[int]
    duplicate_cases: list[str]
    accepted_missing: list[int]
    audit_incomplete: list[int]
    chain_ok: bool
    chain_detail: str
    server_errors: int
    decision_latencies_s: list[float]
    decisions_per_s: float

    @property
    def ok(self) -> bool:
        return not (
            self.undecided
            or self.decided_twice
            or self.duplicate_cases
            or self.accepted_missing
            or self.audit_incomplete
            or not self.chain_ok
        )


def drain(stack: Stack, submissions: list[Submission], timeout: float) -> float:
    """Wait until every case of this load has left the queue; seconds waited."""
    from django.db import connections

    from workflows.models import Case, CaseStatus

    connections.close_all()  # this process's connection may predate a database restart
    external_ids = [s.external_id for s in submissions]

    def settled() -> bool:
        return not Case.objects.filter(
            external_id__in=external_ids, status__in=[CaseStatus.QUEUED, CaseStatus.NEW]
        ).exists()

    started = time.monotonic()
    while not settled() and time.monotonic() - started < timeout:
        time.sleep(1)
    return time.monotonic() - started


def verify(stack: Stack, submissions: list[Submission]) -> Verdict:
    from django.db.models import Count

    from caseloop.accounts.models import Organization
    from caseloop.audit.models import AuditEvent
    from caseloop.audit.selectors import audit_verify
    from workflows.models import Case, Decision, DecisionStatus, Run, Step

    external_ids = [s.external_id for s in submissions]
    cases = list(Case.objects.filter(external_id__in=external_ids).values("id", "external_id", "created_at"))
    per_external = Counter(case["external_id"] for case in cases)
    duplicate_cases = sorted(e for e, n in per_external.items() if n > 1)
    case_ids = [case["id"] for case in cases]
    accepted_ids = {s.case_id for s in submissions if s.accepted}
    accepted_missing = sorted(accepted_ids - set(case_ids))

    production = Decision.objects.filter(case_id__in=case_ids).exclude(status=DecisionStatus.SHADOW)
    per_case = dict(production.values_list("case_id").annotate(n=Count("id")).values_list("case_id", "n"))
    undecided = sorted(pk for pk in case_ids if per_case.get(pk, 0) == 0)
    decided_twice = sorted(pk for pk, n in per_case.items() if n > 1)

    # Every decided case: case.created, one event per step of its run, the decision's routing event.
    decisions = list(production.values("id", "case_id", "run_id", "created_at"))
    steps = dict(
        Step.objects.filter(run__in=[d["run_id"] for d in decisions])
        .values_list("run")
        .annotate(n=Count("id"))
        .values_list("run", "n")
    )
    events = AuditEvent.objects.filter(organization_id=stack.organization_id)
    created = set(
        events.filter(verb="case.created", subject_type="workflows.case").values_list("subject_id", flat=True)
    )
    run_events = dict(
        events.filter(subject_type="workflows.run", verb__startswith="agent.")
        .values_list("subject_id")
        .annotate(n=Count("id"))
        .values_list("subject_id", "n")
    )
    routed = set(
        events.filter(subject_type="workflows.decision", verb__startswith="decision.").values_list(
            "subject_id", flat=True
        )
    )
    audit_incomplete = sorted(
        d["case_id"]
        for d in decisions
        if str(d["case_id"]) not in created
        or run_events.get(str(d["run_id"]), 0) != steps.get(d["run_id"], -1)
        or str(d["id"]) not in routed
    )
    result = audit_verify(organization=Organization.objects.get(pk=stack.organization_id))
    created_at = {case["id"]: case["created_at"] for case in cases}
    latencies = [(d["created_at"] - created_at[d["case_id"]]).total_seconds() for d in decisions]
    span = (
        (max(d["created_at"] for d in decisions) - min(created_at.values())).total_seconds()
        if decisions
        else 0
    )
    assert Run.objects.filter(case_id__in=case_ids).count() >= len(decisions)
    return Verdict(
        accepted=len(accepted_ids),
        submitted=len(submissions),
        undecided=undecided,
        decided_twice=decided_twice,
        duplicate_cases=duplicate_cases,
        accepted_missing=accepted_missing,
        audit_incomplete=audit_incomplete,
        chain_ok=result.ok,
        chain_detail=str(result),
        server_errors=sum(1 for s in submissions for a in s.attempts if a.status >= 500),
        decision_latencies_s=latencies,
        decisions_per_s=len(decisions) / span if span else 0.0,
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(submissions: list[Submission], verdict: Verdict, *, seconds: float, drained_s: float) -> None:
    statuses = Counter(a.status for s in submissions for a in s.attempts)
    accepted = [s for s in submissions if s.accepted]
    latency = [s.attempts[-1].done - s.attempts[0].scheduled for s in accepted]
    last_accept = max((s.attempts[-1].done for s in accepted), default=0.0)
    print(
        f"submitted {verdict.submitted} cases over {seconds:.0f}s; "
        f"answers by status: {dict(sorted(statuses.items()))}"
    )
    print(
        f"accepted {verdict.accepted} ({verdict.accepted / max(1, verdict.submitted):.1%}); sustained "
        f"{len(accepted) / max(seconds, last_accept):.2f} cases/s; latency from schedule "
        f"p50 {1000 * percentile(latency, 0.5):.0f} ms, p99 {1000 * percentile(latency, 0.99):.0f} ms, "
        f"max {1000 * max(latency, default=float('nan')):.0f} ms"
    )
    print(
        f"decisions: {verdict.decisions_per_s:.2f}/s; case stored to decision stored p50 "
        f"{1000 * percentile(verdict.decision_latencies_s, 0.5):.0f} ms, p99 "
        f"{1000 * percentile(verdict.decision_latencies_s, 0.99):.0f} ms; "
        f"queue drained {drained_s:.0f}s after the load"
    )
    checks = [
        ("every accepted case decided exactly once", not verdict.undecided and not verdict.decided_twice),
        ("no submission made two cases", not verdict.duplicate_cases),
        ("every accepted case stored", not verdict.accepted_missing),
        ("each decided case's audit trail complete", not verdict.audit_incomplete),
        ("audit chain verifies", verdict.chain_ok),
        ("no 5xx answers", verdict.server_errors == 0),
    ]
    for name, ok in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if verdict.undecided:
        print(f"    undecided cases: {len(verdict.undecided)} (first {verdict.undecided[:10]})")
    if verdict.decided_twice:
        print(f"    decided twice: {verdict.decided_twice[:10]}")
    if verdict.duplicate_cases:
        print(f"    duplicate cases for: {verdict.duplicate_cases[:10]}")
    if verdict.audit_incomplete:
        print(f"    incomplete audit trail: {verdict.audit_incomplete[:10]}")
    if not verdict.chain_ok:
        print(f"    chain: {verdict.chain_detail}")
    if verdict.server_errors:
        print(f"    5xx answers: {verdict.server_errors}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    stack = Stack.create(args)
    try:
        stack.start()
        print(
            f"gunicorn {args.web_workers} workers, {args.worker_instances} decisions worker instance(s) x "
            f"{args.concurrency}; {args.rate:g} cases/s for {args.seconds:.0f}s (logs: {stack.logs})"
        )
        submissions, _ = run_load(
            stack, rate=args.rate, seconds=args.seconds, retries=args.retries, clients=args.clients
        )
        drained = drain(stack, submissions, args.drain)
        verdict = verify(stack, submissions)
        report(submissions, verdict, seconds=args.seconds, drained_s=drained)
        return 0 if verdict.ok and verdict.server_errors == 0 else 1
    finally:
        stack.stop()
        stack.drop()


if __name__ == "__main__":
    sys.exit(main())
