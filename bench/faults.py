"""Faults under load: what clients see, and whether any accepted case is lost or decided twice.

    .venv/bin/python bench/faults.py                  # private Redis and PostgreSQL (see below)
    .venv/bin/python bench/faults.py --shared         # this machine's own Redis and PostgreSQL

Runs the open-loop load of ``bench/load.py`` (gunicorn, real Celery ``decisions`` workers, Redis,
PostgreSQL) and, while it runs, one after the other:

1. ``worker-child``: SIGKILL one prefork child of a decisions worker in the middle of its work
   (``acks_late`` + ``reject_on_worker_lost``: the task goes straight back to the queue);
2. ``worker``: SIGKILL a whole decisions worker instance (main process and children, as when a
   container is OOM-killed); it is started again 5 s later, as a supervisor would, and its
   unacknowledged tasks come back after the broker's visibility timeout;
3. ``redis``: ``redis-cli shutdown nosave``, 5 s down, then started again with the machine's own
   command (no persistence: whatever the broker held is gone);
4. ``postgres``: ``pg_ctlcluster --skip-systemctl-redirect 15 <cluster> restart``.

Clients retry a failed POST with the same ``Idempotency-Key`` (``--retries``). Printed: the answers
clients got second by second around each fault, how long each fault showed, and the checks of
``bench/load.py`` (every accepted case decided exactly once, complete audit trails, the chain
verifies). Nothing restarts the web server or the surviving workers: recovery is the service's own.

By default the bench starts a private Redis (port ``--redis-port``) and a private PostgreSQL
cluster (``--pg-cluster`` on ``--pg-port``, created with ``pg_createcluster`` and dropped at the
end), with the same binaries and flags as the machine's services, so restarting them disturbs no
one else; ``--shared`` restarts the machine's own (cluster ``main``, Redis on 6379).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # bench/load.py, beside this file

REDIS_FLAGS = ["--bind", "127.0.0.1", "-::1", "--save", "", "--appendonly", "no"]


# --------------------------------------------------------------------------- services


@dataclass
class Services:
    redis_port: int
    pg_cluster: str
    pg_port: int
    private: bool
    redis_appendonly: bool = False
    redis_dir: Path = field(default_factory=lambda: Path("/tmp/caseloop-faults-redis"))

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    @property
    def pg_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}"

    def redis_start(self) -> None:
        if self.private:
            self.redis_dir.mkdir(parents=True, exist_ok=True)
            command = ["redis-server", "--daemonize", "yes", "--port", str(self.redis_port), *REDIS_FLAGS]
            command += ["--dir", str(self.redis_dir), "--logfile", str(self.redis_dir / "redis.log")]
            if self.redis_appendonly:  # as deploy/compose.yaml runs it: the queues survive a restart
                command += ["--appendonly", "yes"]
        else:  # how the development machines start their Redis
            command = [
                "redis-server",
                "--daemonize",
                "yes",
                *REDIS_FLAGS[:3],
                "--port",
                "6379",
                *REDIS_FLAGS[3:],
            ]
            command += ["--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]
        subprocess.run(command, check=True)
        load.wait_for(self._redis_up, 30, "Redis to start")

    def _redis_up(self) -> bool:
        return (
            subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True).returncode
            == 0
        )

    def redis_shutdown(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "shutdown", "nosave"], capture_output=True)

    def pg_start(self) -> None:
        if self.private:
            existing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
            if not any(line.split()[1:2] == [self.pg_cluster] for line in existing.splitlines()):
                subprocess.run(
                    [
                        "pg_createcluster",
                        "15",
                        self.pg_cluster,
                        "--port",
                        str(self.pg_port),
                        "--",
                        "--auth=trust",
                    ],
                    check=True,
                    capture_output=True,
                )
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", "15", self.pg_cluster, "start"], check=False
            )

    def pg_restart(self) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", "15", self.pg_cluster, "restart"], check=True
        )

    def start(self) -> None:
        if self.private:
            self.redis_start()
            self.pg_start()

    def remove(self) -> None:
        if self.private:
            self.redis_shutdown()
            shutil.rmtree(self.redis_dir, ignore_errors=True)
            subprocess.run(["pg_dropcluster", "--stop", "15", self.pg_cluster], capture_output=True)


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    name: str
    at: float  # seconds into the load
    began: float = 0.0
    ended: float = 0.0
    note: str = ""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def inject(fault: Fault, stack: load.Stack, services: Services, started: float) -> None:
    fault.began = time.monotonic() - started
    if fault.name == "worker-child":
        worker = stack.workers[0]
        children = _children(worker.pid) if worker else []
        if children:
            os.kill(children[0], signal.SIGKILL)
            fault.note = f"killed prefork child {children[0]} of worker {worker.pid}"
        else:
            fault.note = "no child process found"
    elif fault.name == "worker":
        worker = stack.workers[1 if len(stack.workers) > 1 else 0]
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        time.sleep(5)  # the supervisor's restart delay
        index = stack.workers.index(worker)
        stack.workers[index] = stack.start_worker(index)
        fault.note = f"killed worker instance {worker.pid} (and its children); restarted after 5 s"
    elif fault.name == "redis":
        services.redis_shutdown()
        time.sleep(5)
        services.redis_start()
        fault.note = "redis-cli shutdown nosave; 5 s down; started again"
    elif fault.name == "postgres":
        t0 = time.monotonic()
        services.pg_restart()
        fault.note = f"pg_ctlcluster restart took {time.monotonic() - t0:.1f}s"
    fault.ended = time.monotonic() - started


def run_faults(faults: list[Fault], stack: load.Stack, services: Services, started: list[float]) -> None:
    while not started:
        time.sleep(0.05)
    for fault in faults:
        while time.monotonic() - started[0] < fault.at:
            time.sleep(0.05)
        try:
            inject(fault, stack, services, started[0])
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            fault.note = f"could not inject: {type(exc).__name__}: {exc}"
            fault.ended = time.monotonic() - started[0]


# --------------------------------------------------------------------------- what clients saw


def client_view(
    stack: load.Stack, submissions: list[load.Submission], faults: list[Fault], seconds: float
) -> None:
    """Per fault, until the next one: answers by second (seconds with only 201s folded), how long
    clients saw errors, and how the cases submitted meanwhile fared."""
    from workflows.models import Decision

    by_second: dict[int, Counter] = {}
    for submission in submissions:
        for attempt in submission.attempts:
            by_second.setdefault(int(attempt.sent), Counter())[attempt.status] += 1
    decided_at = {
        case_id: (created, decided)
        for case_id, created, decided in Decision.objects.filter(
            case__external_id__in=[s.external_id for s in submissions]
        ).values_list("case_id", "case__created_at", "created_at")
    }
    label = {201: "201", 0: "no answer"}
    print("\nWhat clients saw (answers by the second each request was sent; 'no answer': connection error):")
    for i, fault in enumerate(faults):
        until = faults[i + 1].began if i + 1 < len(faults) else seconds
        print(f"\n== {fault.name} at t={fault.began:.1f}s, over by t={fault.ended:.1f}s: {fault.note}")
        folded = 0
        for second in range(max(0, int(fault.began) - 1), int(until)):
            counts = by_second.get(second, Counter())
            if set(counts) <= {201} and second > fault.began + 1:
                folded += 1
                continue
            if folded:
                print(f"   ... {folded} s with only 201 answers")
                folded = 0
            text = ", ".join(f"{label.get(k, str(k))}: {v}" for k, v in sorted(counts.items())) or "-"
            print(f"   t={second:4d}s  {text}")
        if folded:
            print(f"   ... {folded} s with only 201 answers")
        failed = [
            a
            for s in submissions
            for a in s.attempts
            if fault.began - 1 <= a.sent < until and a.status != 201
        ]
        if failed:
            first, last = min(a.sent for a in failed), max(a.sent for a in failed)
            kinds = Counter(a.error or str(a.status) for a in failed)
            print(
                f"   {len(failed)} failed attempts, from +{max(0.0, first - fault.began):.1f}s to "
                f"+{last - fault.began:.1f}s after the fault began ({dict(kinds)})"
            )
        else:
            print("   no failed answers: clients did not notice")
        during = [s for s in submissions if s.attempts and fault.began - 5 <= s.attempts[0].scheduled < until]
        slow = [
            (decided_at[s.case_id][1] - decided_at[s.case_id][0]).total_seconds()
            for s in during
            if s.case_id in decided_at
        ]
        lost = [s.case_id for s in during if s.accepted and s.case_id not in decided_at]
        retried = sum(1 for s in during if len(s.attempts) > 1 and s.accepted)
        print(
            f"   cases submitted from 5 s before it to the next fault: {len(during)}, accepted "
            f"{sum(s.accepted for s in during)} ({retried} after retries), decided {len(slow)}, "
            f"slowest decision {max(slow, default=0):.1f}s after its case; accepted but never decided: "
            f"{len(lost)}{' ' + str(lost[:8]) if lost else ''}"
        )


def decisions_timeline(stack: load.Stack, submissions: list[load.Submission], wall_start: float) -> None:
    from workflows.models import Decision

    external_ids = [s.external_id for s in submissions]
    created = Decision.objects.filter(case__external_id__in=external_ids).values_list("created_at", flat=True)
    per_10s = Counter(int((c.timestamp() - wall_start) // 10) * 10 for c in created)
    print("\nDecisions stored per 10 s (from the start of the load):")
    print("   " + "  ".join(f"{t}s:{n}" for t, n in sorted(per_10s.items())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load.add_arguments(parser)
    parser.set_defaults(seconds=150.0, rate=5.0, retries=4, drain=240.0, database="caseloop_bench_faults")
    parser.add_argument(
        "--shared", action="store_true", help="Restart this machine's own Redis and PostgreSQL."
    )
    parser.add_argument("--redis-port", type=int, default=6390, help="Private Redis port.")
    parser.add_argument("--pg-cluster", default="caseloop_faults", help="Private PostgreSQL 15 cluster name.")
    parser.add_argument("--pg-port", type=int, default=5440, help="Private PostgreSQL port.")
    parser.add_argument(
        "--redis-appendonly",
        action="store_true",
        help="Private Redis with its append-only file (as in compose).",
    )
    parser.add_argument(
        "--faults",
        default="worker-child,worker,redis,postgres",
        help="Which faults, in order (comma-separated).",
    )
    parser.add_argument("--at", default="20,45,80,115", help="Seconds into the load of each fault.")
    args = parser.parse_args()
    services = Services(
        redis_port=6379 if args.shared else args.redis_port,
        pg_cluster="main" if args.shared else args.pg_cluster,
        pg_port=5432 if args.shared else args.pg_port,
        private=not args.shared,
        redis_appendonly=args.redis_appendonly and not args.shared,
    )
    services.start()
    args.server, args.redis = services.pg_url, services.redis_url
    times = [float(t) for t in args.at.split(",")]
    names = args.faults.split(",")
    unknown = set(names) - {"worker-child", "worker", "redis", "postgres"}
    if unknown or len(names) != len(times):
        parser.error(f"--faults: unknown {sorted(unknown)}, or not as many as --at")
    faults = [Fault(name, at) for name, at in zip(names, times, strict=True)]
    stack = load.Stack.create(args)
    try:
        stack.start()
        print(
            f"{args.rate:g} cases/s for {args.seconds:.0f}s; gunicorn {args.web_workers} workers; "
            f"{args.worker_instances} decisions worker instances x {args.concurrency}; visibility timeout "
            f"{args.visibility_timeout}s; client retries {args.retries}; faults at {args.at}s "
            f"(logs: {stack.logs})"
        )
        started: list[float] = []
        thread = threading.Thread(target=run_faults, args=(faults, stack, services, started), daemon=True)
        thread.start()
        wall_start = time.time()

        def mark(_elapsed: float) -> None:
            if not started:
                started.append(time.monotonic() - _elapsed)

        submissions, _ = load.run_load(
            stack,
            rate=args.rate,
            seconds=args.seconds,
            retries=args.retries,
            clients=args.clients,
            on_tick=mark,
        )
        thread.join(timeout=120)
        drained = load.drain(stack, submissions, args.drain)
        verdict = load.verify(stack, submissions)
        client_view(stack, submissions, faults, args.seconds)
        decisions_timeline(stack, submissions, wall_start)
        print()
        load.report(submissions, verdict, seconds=args.seconds, drained_s=drained)
        return 0 if verdict.ok else 1
    finally:
        stack.stop()
        stack.drop()
        if not args.keep:
            services.remove()


if __name__ == "__main__":
    sys.exit(main())
