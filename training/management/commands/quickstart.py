"""``manage.py quickstart``: a working demo organisation, idempotently.

Creates (or completes) the organisation "Acme Insurance" with one login per role, the auto-insurance
claims workflow with its reference data and default rubric, 1,000 generated cases split
train/validation/test, the expert-rules policy as the production version, 50 live cases decided
through Celery, and a short PPO training run with its evaluation. Running it again adds only what
is missing.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from caseloop.accounts.models import Membership, Organization, Role
from caseloop.accounts.permissions import Actor
from caseloop.accounts.services import membership_set, organization_create
from training.management.commands.evaluate import print_report
from training.models import JobStatus, Policy, PolicyKind, Stage, TrainingJob
from training.services import policy_create, policy_version_create, policy_version_promote
from training.services.jobs import training_job_launch
from workflows.models import Case, CaseSource, Decision, Rubric, Split, Workflow
from workflows.packs import get_pack
from workflows.services import (
    case_create,
    case_generate,
    reference_table_set,
    rubric_create,
    workflow_create,
)

ORG_SLUG = "acme"
TABLE_SEED = 7
CASE_SEED = 11
LIVE_SEED = 2026


class Command(BaseCommand):
    help = "Create or complete the demo organisation, workflow, cases, policy and live decisions."

    def add_arguments(self, parser):
        parser.add_argument(
            "--cases", type=int, default=1000, help="Generated cases for train/validation/test."
        )
        parser.add_argument("--live", type=int, default=50, help="Live cases to submit for decision.")
        parser.add_argument(
            "--train-updates",
            type=int,
            default=120,
            help="PPO updates of the demo training run (0: skip it).",
        )
        parser.add_argument(
            "--password",
            default=os.environ.get("CASELOOP_DEMO_PASSWORD", "caseloop-demo"),
            help="Password of the demo logins (default: $CASELOOP_DEMO_PASSWORD or caseloop-demo).",
        )

    def handle(self, *args, cases: int, live: int, password: str, train_updates: int, **options):
        if cases < 0 or live < 0 or train_updates < 0:
            raise CommandError("--cases, --live and --train-updates must be zero or more.")
        pack = get_pack("claims")
        organization, admin_actor = self._organization_and_users(password)
        workflow = self._workflow(admin_actor, pack)
        self._rubric(admin_actor, workflow, pack)
        self._cases(admin_actor, workflow, cases)
        self._production_policy(admin_actor, workflow, pack)
        self._live_cases(admin_actor, workflow, pack, live)
        if train_updates:
            self._training(admin_actor, workflow, train_updates)
        self._report(organization, workflow, password)

    @transaction.atomic
    def _organization_and_users(self, password: str) -> tuple[Organization, Actor]:
        User = get_user_model()
        organization = Organization.objects.filter(slug=ORG_SLUG).first()
        if organization is None:
            organization = organization_create(name="Acme Insurance", slug=ORG_SLUG)
        admin_actor = Actor.for_system(organization)
        for role in Role.values:
            username = f"{role}@acme"
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(username=username, password=password)
            if not Membership.objects.filter(user=user, organization=organization).exists():
                membership_set(actor=admin_actor, user=user, role=role)
        admin = User.objects.get(username="admin@acme")
        return organization, Actor(organization=organization, user=admin, role=Role.ADMIN)

    def _workflow(self, actor: Actor, pack) -> Workflow:
        workflow = Workflow.objects.filter(organization=actor.organization, slug="auto-claims").first()
        if workflow is None:
            with transaction.atomic():
                workflow = workflow_create(
                    actor=actor,
                    name="Auto insurance claims",
                    slug="auto-claims",
                    spec=pack.spec_dict,
                    pack="claims",
                    description="First-notice-of-loss claims: check the policy, the coverage and the "
                    "history, then approve a payout, deny with a reason, or escalate.",
                )
                for name, rows in pack.generate_tables(TABLE_SEED).items():
                    reference_table_set(actor=actor, workflow=workflow, name=name, rows=rows)
            self.stdout.write(f"Created the workflow {workflow.name} with its reference tables.")
        return workflow

    def _rubric(self, actor: Actor, workflow: Workflow, pack) -> None:
        if not Rubric.objects.filter(workflow=workflow).exists():
            rubric_create(
                actor=actor,
                workflow=workflow,
                name="Claims adjudication",
                definition=pack.default_rubric_dict,
            )
            self.stdout.write("Created the default rubric.")

    def _cases(self, actor: Actor, workflow: Workflow, count: int) -> None:
        have = Case.objects.filter(workflow=workflow, source=CaseSource.GENERATED).count()
        if have < count:
            case_generate(
                actor=actor, workflow=workflow, count=count - have, seed=CASE_SEED + have, difficulty=1
            )
            self.stdout.write(f"Generated {count - have} cases (train/validation/test).")

    def _production_policy(self, actor: Actor, workflow: Workflow, pack) -> None:
        policy = Policy.objects.filter(workflow=workflow, kind=PolicyKind.RULES).first()
        if policy is None:
            with transaction.atomic():
                policy = policy_create(
                    actor=actor, workflow=workflow, name="Expert rules", kind=PolicyKind.RULES
                )
                version = policy_version_create(actor=actor, policy=policy, config=pack.rules_dict)
                policy_version_promote(
                    actor=actor,
                    version=version,
                    stage=Stage.SUPERVISED,
                    reason="Quickstart: the experts' rules.",
                )
            self.stdout.write("Put the expert rules policy in production (supervised).")

    def _live_cases(self, actor: Actor, workflow: Workflow, pack, count: int) -> None:
        have = Case.objects.filter(workflow=workflow, split=Split.LIVE).count()
        if have >= count:
            return
        tables = {t.name: t.rows for t in workflow.tables.all()}
        generated = pack.generate_cases(count, seed=LIVE_SEED, difficulty=1, tables=tables)[have:]
        for case in generated:
            # Live cases come without an expected outcome: that is what the policy must decide.
            case_create(actor=actor, workflow=workflow, fields=case.fields, external_id=f"live-{case.id}")
        self.stdout.write(f"Submitted {len(generated)} live cases for decision.")

    def _training(self, actor: Actor, workflow: Workflow, updates: int) -> None:
        """A short PPO run through the training queue (in-process on the embedded default)."""
        if TrainingJob.objects.filter(workflow=workflow, status=JobStatus.SUCCEEDED).exists():
            return
        self.stdout.write(f"Training a PPO policy for {updates} updates…")
        job = training_job_launch(actor=actor, workflow=workflow, config={"ppo": {"total_updates": updates}})
        job.refresh_from_db()
        if job.status != JobStatus.SUCCEEDED:
            self.stdout.write(f"Training job {job.pk} is {job.status}; a training worker will pick it up.")
            return
        for report in job.result_version.evaluations.order_by("id"):
            print_report(self.stdout, report)

    def _report(self, organization: Organization, workflow: Workflow, password: str) -> None:
        decided = Decision.objects.filter(case__workflow=workflow, case__split=Split.LIVE).count()
        live = Case.objects.filter(workflow=workflow, split=Split.LIVE).count()
        self.stdout.write(
            self.style.SUCCESS(f"\n{organization.name} is ready: {live} live cases, {decided} decided.")
        )
        self.stdout.write(f"Demo logins (password: {password}):")
        for role in Role.values:
            self.stdout.write(f"  {role:<9} {role}@acme")
