"""Server time of the operations list pages at scale: 100,000 cases and 1,000,000 audit events.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/ui_lists.py

Uses the server of ``DATABASE_URL`` but its own database (``caseloop_bench_ui`` unless
``--database`` says otherwise): created, migrated, seeded and dropped at the end (``--keep`` leaves
it). The seed is real where it matters and bulk where it is volume:

- through the services: the organisation, its members, the claims workflow (reference tables,
  rubric, generated cases, the expert rules in production) and a few live cases decided for real;
- by bulk SQL, copying those real rows: ``--cases`` cases in all (60 % live, each live case with
  its run and decision: ~2,000 pending review, the rest rejected, corrected, approved or executed
  without review), training jobs with metric series, members and API keys;
- by COPY: ``--events`` audit events continuing the organisation's chain, each hashed with the one
  definition in ``caseloop.audit.chain``, so the chain still verifies; agents' steps carry
  explanations (some with rare words, for the search).

Then every list page is requested in-process with Django's test client (middleware, view,
template: the server's whole share of a request), ``--repeat`` times after a warm-up, and the
median and 95th percentile are printed with the page's query count, at two page sizes where the
page has them. Target: every list page under 300 ms, and the same number of queries whatever the
page size.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dj_database_url
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", default="caseloop_bench_ui", help="Scratch database, dropped at the end."
    )
    parser.add_argument("--cases", type=int, default=100_000, help="Cases in all.")
    parser.add_argument("--events", type=int, default=1_000_000, help="Audit events added to the chain.")
    parser.add_argument("--repeat", type=int, default=20, help="Timed requests per page.")
    parser.add_argument("--verify", action="store_true", help="Also time a full chain verification.")
    parser.add_argument("--keep", action="store_true", help="Leave the scratch database for inspection.")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        print("Set DATABASE_URL to a PostgreSQL server (the bench makes its own database).", file=sys.stderr)
        return 2
    server = dj_database_url.parse(url)
    admin = {
        "host": server["HOST"] or "127.0.0.1",
        "port": server["PORT"] or 5432,
        "user": server["USER"],
        "password": server["PASSWORD"] or None,
        "dbname": "postgres",
    }
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.database)))
    try:
        os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + args.database
        os.environ.setdefault("SECRET_KEY", "caseloop-bench-secret-key-not-for-production")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caseloop.settings")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        os.environ.setdefault("CELERY_BROKER_URL", "memory://")
        # The test client speaks plain HTTP in-process: no HTTPS redirect, no secure-only cookies.
        os.environ["SECURE_SSL_REDIRECT"] = "0"
        os.environ["SECURE_COOKIES"] = "0"
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command
        from django.test.utils import override_settings

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        seed = Seed(cases=args.cases, events=args.events)
        seed.run()
        print(f"seeded in {time.perf_counter() - started:.0f} s: {seed.summary()}\n")
        # Plain static names (no collectstatic manifest in a scratch run); everything else as deployed.
        plain_static = {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        with override_settings(STORAGES=plain_static, DEBUG=False):
            ok = measure(seed, repeat=args.repeat)
            if args.verify:
                time_verify(seed)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(**admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.database))
                )
    return 0 if ok else 1


# --------------------------------------------------------------------------- seeding


RARE_WORDS = ("hailstorm", "aquaplaning", "windscreen")
CLAIMANTS = ("Isabella Popescu", "Tom Becker", "Amara Okafor", "Lena Novak", "Ravi Iyer", "Chen Wei")
TOOLS = ("lookup_policy", "check_coverage", "claim_history", "fraud_score", "compute_payout")


class Seed:
    def __init__(self, *, cases: int, events: int) -> None:
        self.n_cases, self.n_events = cases, events
        self.rng = random.Random(7)

    def summary(self) -> str:
        from caseloop.audit.models import AuditEvent
        from training.models import TrainingJob
        from workflows.models import Case, Decision, DecisionStatus

        org = self.organization
        return (
            f"{Case.objects.filter(organization=org).count():,} cases, "
            f"{Decision.objects.filter(organization=org).count():,} decisions "
            f"({Decision.objects.filter(organization=org, status=DecisionStatus.PENDING_REVIEW).count():,} "
            f"pending review), {AuditEvent.objects.filter(organization=org).count():,} audit events, "
            f"{TrainingJob.objects.filter(organization=org).count()} training jobs"
        )

    def run(self) -> None:
        self.through_services()
        self.bulk_cases_and_decisions()
        self.bulk_training_jobs()
        self.bulk_members_and_keys()
        self.copy_audit_events()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    def through_services(self) -> None:
        from django.contrib.auth import get_user_model

        from caseloop.accounts.models import Membership, Role
        from caseloop.accounts.permissions import Actor
        from caseloop.accounts.services import organization_create
        from training.models import PolicyKind
        from training.services import policy_create, policy_version_create, policy_version_promote
        from workflows.models import Case, CaseStatus
        from workflows.packs import get_pack
        from workflows.services import (
            case_create,
            case_decide,
            case_generate,
            reference_table_set,
            rubric_create,
            workflow_create,
        )

        users = get_user_model()
        self.organization = organization_create(name="Bench Mutual", slug="bench-mutual")
        organization_create(name="Other Mutual", slug="other-mutual")  # a neighbour the queries must skip
        self.users = {}
        for role in (Role.ADMIN, Role.REVIEWER, Role.AUDITOR, Role.EXPERT):
            user = users.objects.create_user(username=f"bench-{role}", password="bench-password-123")
            Membership.objects.create(user=user, organization=self.organization, role=role)
            self.users[role] = user
        actor = Actor(organization=self.organization, user=self.users[Role.ADMIN], role=Role.ADMIN)
        self.actor = actor
        pack = get_pack("claims")
        workflow = workflow_create(actor=actor, name="Auto claims", spec=pack.spec_dict, pack="claims")
        for name, rows in pack.generate_tables(3).items():
            reference_table_set(actor=actor, workflow=workflow, name=name, rows=rows)
        rubric_create(actor=actor, workflow=workflow, name="Default", definition=pack.default_rubric_dict)
        case_generate(actor=actor, workflow=workflow, count=200, seed=3, difficulty=1)
        policy = policy_create(actor=actor, workflow=workflow, name="Expert rules", kind=PolicyKind.RULES)
        self.rules = policy_version_create(actor=actor, policy=policy, config=pack.rules_dict)
        policy_version_promote(actor=actor, version=self.rules, stage="supervised")
        self.workflow = workflow
        tables = {t.name: t.rows for t in workflow.tables.all()}
        decisions = []
        for fields in [c.fields for c in pack.generate_cases(5, seed=99, difficulty=1, tables=tables)]:
            case = case_create(actor=actor, workflow=workflow, fields=fields, decide=False)
            Case.objects.filter(pk=case.pk).update(status=CaseStatus.QUEUED)
            decisions.append(case_decide(case_id=case.pk))
        self.template_decision = decisions[0]
        self.template_labelled = Case.objects.filter(workflow=workflow, expected__isnull=False).first()

    def bulk_cases_and_decisions(self) -> None:
        from django.db import connection

        from workflows.models import Case

        existing = Case.objects.filter(organization=self.organization).count()
        count = max(0, self.n_cases - existing)
        d = self.template_decision
        params = {
            "org": self.organization.pk,
            "wf": self.workflow.pk,
            "wv": d.case.workflow_version_id,
            "live_case": d.case_id,
            "labelled_case": self.template_labelled.pk,
            "n": count,
            "run": d.run_id,
            "decision": d.pk,
            "reviewer": self.users["reviewer"].pk,
        }
        with connection.cursor() as cursor:
            # 60 % live, 30 % train, 5 % validation, 5 % test; spread over the last 58 days.
            cursor.execute(
                """
                INSERT INTO workflows_case (organization_id, workflow_id, workflow_version_id, external_id,
                    fields, expected, split, source, difficulty, status, created_at)
                SELECT %(org)s, %(wf)s, %(wv)s, 'bench-' || g, l.fields,
                       CASE WHEN g %% 20 < 8 THEN t.expected END,
                       CASE WHEN g %% 20 < 6 THEN 'train' WHEN g %% 20 = 6 THEN 'validation'
                            WHEN g %% 20 = 7 THEN 'test' ELSE 'live' END,
                       CASE WHEN g %% 20 < 8 THEN 'generated' ELSE 'api' END,
                       1, CASE WHEN g %% 20 < 8 THEN 'new' ELSE 'decided' END,
                       now() - ((%(n)s - g) * interval '50 seconds')
                FROM generate_series(1, %(n)s) AS g,
                     (SELECT fields FROM workflows_case WHERE id = %(live_case)s) AS l,
                     (SELECT expected FROM workflows_case WHERE id = %(labelled_case)s) AS t
                """,
                params,
            )
            cursor.execute(
                """
                INSERT INTO workflows_run (organization_id, case_id, workflow_version_id, rubric_version_id,
                    policy_version_id, evaluation_id, seed, status, total_reward, score, breakdown, truncated,
                    error, started_at, finished_at)
                SELECT c.organization_id, c.id, r.workflow_version_id, r.rubric_version_id,
                       r.policy_version_id, NULL, 0, r.status, r.total_reward, r.score, r.breakdown,
                       r.truncated, '', c.created_at, c.created_at + interval '2 seconds'
                FROM workflows_case c, (SELECT * FROM workflows_run WHERE id = %(run)s) AS r
                WHERE c.organization_id = %(org)s AND c.split = 'live' AND c.external_id LIKE 'bench-%%'
                """,
                params,
            )
            # Each run's decision: 1 in 30 still pending review, the others finished in various ways.
            cursor.execute(
                """
                INSERT INTO workflows_decision (organization_id, case_id, run_id, policy_version_id, name,
                    arguments, explanation, confidence, status, outcome, routing, risk_level,
                    approvals_required, review_round, review_requested_at, claimed_by_id, claim_expires_at,
                    review_outcome, reviewed_at, executed_at, created_at, updated_at)
                SELECT r.organization_id, r.case_id, r.id, d.policy_version_id, d.name, d.arguments,
                       d.explanation, d.confidence,
                       CASE WHEN r.id %% 30 = 0 THEN 'pending_review' WHEN r.id %% 30 = 1 THEN 'rejected'
                            ELSE 'executed' END,
                       d.outcome, d.routing, (r.id %% 5) / 2, 1, 0,
                       CASE WHEN r.id %% 30 < 16 THEN r.started_at END, NULL, NULL,
                       CASE WHEN r.id %% 30 = 0 THEN '' WHEN r.id %% 30 = 1 THEN 'rejected'
                            WHEN r.id %% 30 < 4 THEN 'corrected' WHEN r.id %% 30 < 16 THEN 'approved'
                            ELSE '' END,
                       CASE WHEN r.id %% 30 BETWEEN 1 AND 15 THEN r.started_at + interval '3 hours' END,
                       CASE WHEN r.id %% 30 > 1 THEN r.started_at + interval '3 hours' END,
                       r.started_at, r.started_at
                FROM workflows_run r, (SELECT * FROM workflows_decision WHERE id = %(decision)s) AS d
                WHERE r.organization_id = %(org)s AND r.id <> %(run)s
                  AND NOT EXISTS (SELECT 1 FROM workflows_decision x WHERE x.run_id = r.id)
                """,
                params,
            )

    def bulk_training_jobs(self) -> None:
        from training.models import JobStatus, TrainingJob, TrainingMetric
        from training.services.jobs import training_job_launch

        job = training_job_launch(
            actor=self.actor, workflow=self.workflow, config={"evaluate_limit": 50}, enqueue=False
        )
        now = datetime.now(UTC)
        fields = {
            f.attname: getattr(job, f.attname)
            for f in TrainingJob._meta.concrete_fields
            if f.attname not in ("id", "created_at")
        }
        statuses = [JobStatus.SUCCEEDED] * 6 + [JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.RUNNING]
        jobs = TrainingJob.objects.bulk_create(
            [
                TrainingJob(**(fields | {"status": statuses[i % len(statuses)], "progress": 1.0}))
                for i in range(299)
            ]
        )
        TrainingJob.objects.filter(pk__in=[j.pk for j in jobs]).update(created_at=now - timedelta(days=1))
        TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, update=3000, progress=1.0)
        criteria = ("right_outcome", "looked_up_policy", "checked_coverage", "payout_within_tolerance")
        TrainingMetric.objects.bulk_create(
            [
                TrainingMetric(
                    job=job,
                    update=u,
                    env_steps=u * 1024,
                    values={
                        "reward/mean": 0.2 + 0.7 * (1 - 1 / (1 + u / 300)),
                        "reward/rubric": 0.25 + 0.7 * (1 - 1 / (1 + u / 300)),
                        **{f"reward/{c}": min(1.0, 0.1 * i + u / 3000) for i, c in enumerate(criteria)},
                        "decision/accuracy": min(1.0, 0.3 + u / 4000),
                        "episode/gated": max(0.0, 0.3 - u / 10000),
                        "loss/policy": 0.01,
                        "optim/lr": 1e-3 * (1 - u / 3000),
                    },
                )
                for u in range(1, 3001)
            ],
            batch_size=1000,
        )
        self.running_job = job

    def bulk_members_and_keys(self) -> None:
        from django.contrib.auth import get_user_model

        from caseloop.accounts.models import ApiKey, Membership, Role

        users = get_user_model().objects.bulk_create(
            [get_user_model()(username=f"member-{i:03d}", password="!") for i in range(60)]
        )
        roles = (Role.REVIEWER, Role.EXPERT, Role.AUDITOR)
        Membership.objects.bulk_create(
            [
                Membership(user=u, organization=self.organization, role=roles[i % 3])
                for i, u in enumerate(users)
            ]
        )
        ApiKey.objects.bulk_create(
            [
                ApiKey(
                    organization=self.organization,
                    name=f"integration {i}",
                    prefix=f"{i:08x}",
                    secret_hash="0" * 64,
                    scopes=["cases:write"],
                )
                for i in range(20)
            ]
        )

    def copy_audit_events(self) -> None:
        """``--events`` events after the organisation's chain head, hashed as audit_record hashes them,
        written with COPY; then the head moves to the last one. The chain verifies."""
        from django.db import connection

        from caseloop.audit.chain import canonical_json, chain_hash, event_content
        from caseloop.audit.models import AuditChainHead

        org_id = self.organization.pk
        head = AuditChainHead.objects.get(organization_id=org_id)
        sequence, prev = head.sequence, head.hash
        n = self.n_events
        end = datetime.now(UTC) - timedelta(minutes=5)
        start = end - timedelta(days=58)
        step = (end - start) / max(1, n)
        reviewers = [f"member-{i:03d}" for i in range(0, 60, 3)]
        version_ref, version_label = str(self.rules.pk), str(self.rules)
        rng = self.rng

        def cycle(case_id: int):
            """The events of one live case's life, as the services write them."""
            claimant = rng.choice(CLAIMANTS)
            policy_no = f"AUT-{rng.randrange(100000, 999999)}"
            yield (
                "api_key",
                "1",
                "api key 00000001",
                "case.created",
                "workflows.case",
                case_id,
                {"workflow": self.workflow.pk, "split": "live", "source": "api"},
            )
            for index, tool in enumerate(TOOLS):
                yield (
                    "policy_version",
                    version_ref,
                    version_label,
                    "agent.tool_called",
                    "workflows.run",
                    case_id,
                    {
                        "case": case_id,
                        "step": index,
                        "action": tool,
                        "arguments": {},
                        "result": {"ok": True},
                        "error": None,
                        "confidence": None,
                        "probabilities": {},
                        "explanation": f"Calling {tool} for {claimant}.",
                    },
                )
            amount = rng.randrange(200, 20000) + 0.42
            rare = f" {rng.choice(RARE_WORDS)} damage reported." if rng.random() < 0.004 else ""
            yield (
                "policy_version",
                version_ref,
                version_label,
                "agent.decided",
                "workflows.run",
                case_id,
                {
                    "case": case_id,
                    "step": 5,
                    "action": "approve",
                    "arguments": {"amount": amount},
                    "result": None,
                    "error": None,
                    "confidence": 0.95,
                    "probabilities": {"approve": 0.95, "deny": 0.03, "escalate": 0.02},
                    "explanation": f"Policy {policy_no} is active; collision covered up to 20,000.00 with "
                    f"deductible 500.00; fraud score 0.{rng.randrange(10, 99)}.{rare} "
                    f"Paying {amount:,.2f}.",
                },
            )
            yield (
                "policy_version",
                version_ref,
                version_label,
                "decision.pending_review",
                "workflows.decision",
                case_id,
                {"case": case_id, "from": "proposed", "to": "pending_review"},
            )
            if rng.random() < 0.6:
                reviewer = rng.choice(reviewers)
                yield (
                    "user",
                    reviewer,
                    reviewer,
                    "review.submitted",
                    "workflows.decision",
                    case_id,
                    {
                        "review": case_id,
                        "verdict": "approve",
                        "reason": "",
                        "comment": "checked the photos",
                        "approvals": 1,
                        "approvals_required": 1,
                    },
                )
                yield (
                    "system",
                    "system",
                    "system",
                    "decision.executed",
                    "workflows.decision",
                    case_id,
                    {"case": case_id, "from": "approved", "to": "executed"},
                )

        columns = (
            "organization_id, sequence, created_at, actor_kind, actor_ref, actor_label, verb, subject_type, "
            "subject_id, payload, request_id, prev_hash, hash"
        )
        written, case_id = 0, 1_000_000
        moment = start
        with connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper
            with raw.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy:
                while written < n:
                    case_id += 1
                    for kind, ref, label, verb, subject_type, subject_id, payload in cycle(case_id):
                        if written >= n:
                            break
                        sequence += 1
                        moment += step
                        content = event_content(
                            organization_id=org_id,
                            sequence=sequence,
                            created_at=moment,
                            actor_kind=kind,
                            actor_ref=ref,
                            actor_label=label,
                            verb=verb,
                            subject_type=subject_type,
                            subject_id=str(subject_id),
                            payload=payload,
                            request_id="",
                        )
                        digest = chain_hash(prev, content)
                        copy.write_row(
                            (
                                org_id,
                                sequence,
                                moment.isoformat(timespec="microseconds"),
                                kind,
                                ref,
                                label,
                                verb,
                                subject_type,
                                str(subject_id),
                                canonical_json(payload),
                                "",
                                prev,
                                digest,
                            )
                        )
                        prev = digest
                        written += 1
            cursor.execute(
                "UPDATE audit_auditchainhead SET sequence = %s, hash = %s WHERE organization_id = %s",
                [sequence, prev, org_id],
            )
        self.last_sequence = sequence


# --------------------------------------------------------------------------- measuring


def measure(seed: Seed, *, repeat: int) -> bool:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import NoReverseMatch, reverse

    from caseloop.accounts.models import Role

    reviewer_label = "member-003"
    old_day = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
    deep = max(1, seed.last_sequence // 1000)
    pages: list[tuple[str, str, str]] = [
        ("dashboard", Role.ADMIN, "/"),
        ("review queue, 25 a page", Role.REVIEWER, "/reviews/?per_page=25"),
        ("review queue, 100 a page", Role.REVIEWER, "/reviews/?per_page=100"),
        ("review queue, page 40 of 25", Role.REVIEWER, "/reviews/?per_page=25&page=40"),
        ("training jobs, 25 a page", Role.ADMIN, "/training/?per_page=25"),
        ("training jobs, 100 a page", Role.ADMIN, "/training/?per_page=100"),
        ("training jobs, live poll", Role.ADMIN, "/training/?per_page=25&fragment=live"),
        ("training job, 3,000 metric points", Role.ADMIN, f"/training/jobs/{seed.running_job.pk}/"),
        ("training job, live poll", Role.ADMIN, f"/training/jobs/{seed.running_job.pk}/?fragment=live"),
        ("audit, newest 50", Role.AUDITOR, "/audit/"),
        ("audit, newest 200", Role.AUDITOR, "/audit/?per_page=200"),
        ("audit, oldest page (keyset)", Role.AUDITOR, f"/audit/?before={deep}"),
        ("audit, verb", Role.AUDITOR, "/audit/?verb=review.submitted"),
        ("audit, rare verb", Role.AUDITOR, "/audit/?verb=policy_version.promoted"),
        ("audit, actor", Role.AUDITOR, f"/audit/?actor={reviewer_label}"),
        ("audit, subject", Role.AUDITOR, "/audit/?subject_type=workflows.decision&subject_id=1000500"),
        ("audit, one day 40 days ago", Role.AUDITOR, f"/audit/?since={old_day}&until={old_day}"),
        ("audit, search common word", Role.AUDITOR, "/audit/?q=collision"),
        ("audit, search rare word", Role.AUDITOR, "/audit/?q=hailstorm"),
        ("audit, search no match", Role.AUDITOR, "/audit/?q=zeppelin"),
        (
            "audit, search + verb + date",
            Role.AUDITOR,
            f"/audit/?q=aquaplaning&verb=agent.decided&since={old_day}",
        ),
        ("members", Role.ADMIN, "/organization/members/"),
        ("API keys", Role.ADMIN, "/organization/api-keys/"),
    ]
    try:
        reverse("case-list")
        pages += [
            ("cases, newest", Role.EXPERT, "/cases/"),
            ("cases, 100 a page", Role.EXPERT, "/cases/?size=100"),
            ("cases, live split", Role.EXPERT, f"/cases/?workflow={seed.workflow.pk}&split=live"),
        ]
    except NoReverseMatch:
        pass

    clients: dict[str, Client] = {}
    for role, user in seed.users.items():
        clients[role] = Client()
        clients[role].force_login(user)

    print(f"{'page':<38}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}{'queries':>9}{'KiB':>7}")
    ok = True
    for label, role, url in pages:
        client = clients[role]
        for _ in range(3):
            response = client.get(url)
            if response.status_code != 200:
                print(f"{label:<38} HTTP {response.status_code} for {url}")
                ok = False
                break
        else:
            with CaptureQueriesContext(connection) as queries:
                client.get(url)
            n_queries = len(queries)  # now: the next request clears the connection's query log
            timings = []
            for _ in range(repeat):
                began = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - began) * 1000)
            timings.sort()
            median = statistics.median(timings)
            p95 = timings[min(len(timings) - 1, round(0.95 * len(timings)) - 1)]
            slow = " !" if p95 > TARGET_MS else ""
            ok = ok and not slow
            print(
                f"{label:<38}{median:>11.1f}{p95:>9.1f}{timings[-1]:>9.1f}{n_queries:>9}"
                f"{len(response.content) / 1024:>7.0f}{slow}"
            )
    print(f"\nTarget: p95 under {TARGET_MS:.0f} ms on every page ('!' marks a miss).")
    return ok


def time_verify(seed: Seed) -> None:
    from caseloop.audit.selectors import audit_verify

    began = time.perf_counter()
    result = audit_verify(organization=seed.organization)
    seconds = time.perf_counter() - began
    print(
        f"audit_verify: {'ok' if result.ok else result.first_break} — {result.checked:,} events in "
        f"{seconds:.1f} s ({result.checked / seconds:,.0f} events/s)"
    )


if __name__ == "__main__":
    sys.exit(main())
