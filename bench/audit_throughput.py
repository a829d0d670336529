"""Audit trail throughput on PostgreSQL: appends via ``audit_record`` against plain inserts, and verification.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/caseloop .venv/bin/python bench/audit_throughput.py

Uses the server and credentials of ``DATABASE_URL`` but its own scratch database (``caseloop_bench``
unless ``--database`` says otherwise): created, migrated, and dropped at the end.

(a) append: events/s through ``audit_record`` (lock head, hash, insert, move head), one transaction
    per event, against inserting the same kind of row with precomputed fields, one transaction per
    row, with ``AuditEvent.objects.create`` (the target's baseline) and, for context, with one raw
    INSERT. They run interleaved in rounds so drift in the machine's load hits all alike.
    Target: audit_record reaches at least 70 % of the ORM create rate.
(b) verify: ``audit_verify`` over a chain of 100,000 events. Target: at least 50,000 events/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
APPEND_TARGET = 0.70
VERIFY_TARGET = 50_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", default="caseloop_bench", help="Scratch database, dropped and recreated."
    )
    parser.add_argument("--appends", type=int, default=4000, help="Events appended by each method.")
    parser.add_argument(
        "--rounds", type=int, default=8, help="Interleaved rounds the appends are split into."
    )
    parser.add_argument("--verify-events", type=int, default=100_000, help="Length of the chain to verify.")
    parser.add_argument("--keep", action="store_true", help="Leave the scratch database for inspection.")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        print(
            "Set DATABASE_URL to a PostgreSQL server (the bench makes its own database there).",
            file=sys.stderr,
        )
        return 2
    server = dj_database_url.parse(url)
    admin = {
        "host": server["HOST"] or "127.0.0.1",
        "port": server["PORT"] or 5432,
        "user": server["USER"],
        "password": server["PASSWORD"] or None,
        "dbname": "postgres",
    }
    _recreate(admin, args.database)
    try:
        # Point Django at the scratch database before it reads its settings.
        os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + args.database
        os.environ.setdefault("SECRET_KEY", "caseloop-bench-secret-key-not-for-production")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caseloop.settings")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        ok_append = bench_append(args.appends, args.rounds)
        ok_verify = bench_verify(args.verify_events)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            _drop(admin, args.database)
    return 0 if ok_append and ok_verify else 1


def _recreate(admin: dict, name: str) -> None:
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop(admin: dict, name: str) -> None:
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


RAW_INSERT = """
INSERT INTO audit_auditevent (
    organization_id, sequence, created_at, actor_kind, actor_ref, actor_label, verb,
    subject_type, subject_id, payload, request_id, prev_hash, hash
) VALUES (
    %(organization_id)s, %(sequence)s, %(created_at)s, %(actor_kind)s, %(actor_ref)s, %(actor_label)s,
    %(verb)s, %(subject_type)s, %(subject_id)s, %(payload)s::jsonb, %(request_id)s, %(prev_hash)s, %(hash)s
) RETURNING id
"""


def bench_append(count: int, rounds: int) -> bool:
    from django.db import connection, transaction
    from django.utils import timezone

    from caseloop.accounts.permissions import Actor
    from caseloop.accounts.services import organization_create
    from caseloop.audit.models import AuditEvent
    from caseloop.audit.services import audit_record

    audited = Actor.for_system(organization_create(name="Bench audited", slug="bench-audited"))
    plain_org = organization_create(name="Bench plain", slug="bench-plain")
    per_round = max(1, count // rounds)
    base = AuditEvent.objects.filter(organization=plain_org).count()

    def payload(i: int) -> dict:
        return {"case": i, "decision": "approve", "score": 0.75, "tags": ["bench", "append"]}

    # Fields computed before timing, so the plain path measures the insert and its transaction alone.
    now = timezone.now()
    plain_rows: list[dict[str, Any]] = [
        {
            "organization": plain_org,
            "sequence": base + i + 1,
            "created_at": now + timedelta(microseconds=i),
            "actor_kind": "system",
            "actor_ref": "system",
            "actor_label": "system",
            "verb": "bench.append",
            "subject_type": "bench",
            "subject_id": str(i),
            "payload": payload(i),
            "request_id": "",
            "prev_hash": hashlib.sha256(f"plain-{i - 1}".encode()).hexdigest(),
            "hash": hashlib.sha256(f"plain-{i}".encode()).hexdigest(),
        }
        for i in range(per_round * rounds)
    ]

    raw_org = organization_create(name="Bench raw", slug="bench-raw")
    raw_rows: list[dict[str, Any]] = [
        {name: value for name, value in row.items() if name != "organization"}
        | {
            "organization_id": raw_org.pk,
            "payload": json.dumps(row["payload"]),
            "hash": hashlib.sha256(f"raw-{i}".encode()).hexdigest(),
        }
        for i, row in enumerate(plain_rows)
    ]

    def run_audited(start: int) -> float:
        began = time.perf_counter()
        for i in range(start, start + per_round):
            with transaction.atomic():
                audit_record(actor=audited, verb="bench.append", subject=("bench", i), payload=payload(i))
        return time.perf_counter() - began

    def run_plain(start: int) -> float:
        began = time.perf_counter()
        for row in plain_rows[start : start + per_round]:
            with transaction.atomic():
                AuditEvent.objects.create(**row)
        return time.perf_counter() - began

    def run_raw(start: int) -> float:
        # For context only: the same row through one raw INSERT, as audit_record's own insert is raw SQL.
        began = time.perf_counter()
        for row in raw_rows[start : start + per_round]:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(RAW_INSERT, row)
        return time.perf_counter() - began

    # Warm up the connection, caches and code paths of all three on throwaway rows.
    for i in range(50):
        with transaction.atomic():
            audit_record(actor=audited, verb="bench.warmup", subject=("bench", -i), payload=payload(i))
    warm_org = organization_create(name="Bench warm-up", slug="bench-warmup")
    for i in range(50):
        with transaction.atomic():
            AuditEvent.objects.create(**(plain_rows[i] | {"organization": warm_org, "hash": f"warm{i:060d}"}))
        with transaction.atomic(), connection.cursor() as cursor:
            warm = {"organization_id": warm_org.pk, "sequence": 1000 + i, "hash": f"warmraw{i:057d}"}
            cursor.execute(RAW_INSERT, raw_rows[i] | warm)

    runs = {
        "audit_record": run_audited,
        "plain insert (ORM create)": run_plain,
        "plain insert (raw SQL)": run_raw,
    }
    seconds = dict.fromkeys(runs, 0.0)
    for r in range(rounds):
        # Rotate which goes first, so none always runs on a freshly flushed or cached table.
        names = list(runs)
        for name in names[r % 3 :] + names[: r % 3]:
            seconds[name] += runs[name](r * per_round)
    total = per_round * rounds
    rates = {name: total / spent for name, spent in seconds.items()}
    ratio = rates["audit_record"] / rates["plain insert (ORM create)"]
    ok = ratio >= APPEND_TARGET
    print(f"(a) append, one transaction per event, {total} events each, {rounds} interleaved rounds")
    for name, rate in rates.items():
        print(f"    {name:26s}: {rate:7,.0f}/s  ({seconds[name] / total * 1e6:7.1f} µs each)")
    verdict = "PASS" if ok else "FAIL"
    print(f"    ratio audit_record / ORM create: {ratio:.2f}  target ≥ {APPEND_TARGET:.2f}  {verdict}")
    print(f"    (audit_record / raw insert: {rates['audit_record'] / rates['plain insert (raw SQL)']:.2f})")
    return ok


def bench_verify(count: int) -> bool:
    from django.db import connection, transaction
    from django.utils import timezone

    from caseloop.accounts.services import organization_create
    from caseloop.audit.chain import chain_hash, event_content
    from caseloop.audit.models import AuditChainHead, AuditEvent
    from caseloop.audit.selectors import audit_verify

    organization = organization_create(name="Bench verify", slug="bench-verify")
    # Build a valid chain directly (bulk inserts), continuing from the organisation's creation event.
    head = AuditChainHead.objects.get(organization=organization)
    sequence, prev_hash = head.sequence, head.hash
    now = timezone.now()
    began = time.perf_counter()
    batch: list[AuditEvent] = []
    with transaction.atomic():
        for i in range(count - sequence):
            sequence += 1
            fields: dict[str, Any] = {
                "organization_id": organization.pk,
                "sequence": sequence,
                "created_at": now + timedelta(microseconds=i),
                "actor_kind": "user",
                "actor_ref": str(i % 17),
                "actor_label": f"reviewer-{i % 17}",
                "verb": "case.decided",
                "subject_type": "workflows.case",
                "subject_id": str(i),
                "payload": {
                    "decision": "approve",
                    "score": i % 100 / 100,
                    "rubric": {"clarity": 3, "risk": "low"},
                },
                "request_id": f"req-{i:08d}",
            }
            digest = chain_hash(prev_hash, event_content(**fields))
            batch.append(AuditEvent(**fields, prev_hash=prev_hash, hash=digest))
            prev_hash = digest
            if len(batch) == 5000:
                AuditEvent.objects.bulk_create(batch)
                batch.clear()
        AuditEvent.objects.bulk_create(batch)
        AuditChainHead.objects.filter(organization=organization).update(sequence=sequence, hash=prev_hash)
    print(f"(b) verify: seeded a chain of {sequence:,} events in {time.perf_counter() - began:.1f}s")
    # Settle the fresh rows as a long-lived table is settled, so autovacuum does not compete with the timing.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) audit_auditevent")

    audit_verify(organization=organization)  # warm: plan, caches
    timings = []
    for _ in range(3):
        began = time.perf_counter()
        result = audit_verify(organization=organization)
        timings.append(time.perf_counter() - began)
        if not result.ok or result.checked != sequence:
            print(f"    verification failed unexpectedly: {result.first_break}")
            return False
    best, median = min(timings), sorted(timings)[1]
    rate = sequence / median
    ok = rate >= VERIFY_TARGET
    print(f"    audit_verify : {rate:9,.0f} events/s  (median of 3: {median:.2f}s, best {best:.2f}s)")
    print(f"    target       : ≥ {VERIFY_TARGET:,} events/s  {'PASS' if ok else 'FAIL'}")
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
