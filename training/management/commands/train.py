"""``manage.py train --workflow SLUG [--org SLUG] [--config FILE] [--nproc N]``: train with a progress bar.

Runs the job in this process (as a ``training`` worker would) so progress shows here; with
``--queue`` it only queues the job for the workers.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from caseloop.accounts.models import Organization
from caseloop.accounts.permissions import Actor
from training.models import JobStatus
from training.services.jobs import training_job_launch, training_job_run
from workflows.models import Workflow


def resolve_workflow(workflow_slug: str, org_slug: str | None) -> Workflow:
    workflows = Workflow.objects.filter(slug=workflow_slug).select_related("organization")
    if org_slug:
        workflows = workflows.filter(organization__slug=org_slug)
    found = list(workflows[:2])
    if not found:
        raise CommandError(
            f"--workflow: no workflow {workflow_slug!r}" + (f" in {org_slug!r}" if org_slug else "")
        )
    if len(found) > 1:
        raise CommandError(
            f"--workflow: {workflow_slug!r} exists in several organisations; name one with --org"
        )
    return found[0]


def progress_bar(fraction: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {fraction * 100:5.1f}%"


class Command(BaseCommand):
    help = "Train a neural policy for a workflow with PPO and evaluate it."

    def add_arguments(self, parser):
        parser.add_argument("--workflow", required=True, help="Workflow slug, e.g. auto-claims.")
        parser.add_argument("--org", help="Organisation slug, when the workflow slug is not unique.")
        parser.add_argument(
            "--config", type=Path, help="JSON file: {'ppo': {...}, 'include_review_cases': …}."
        )
        parser.add_argument("--policy", default="PPO policy", help="Name of the neural policy to train.")
        parser.add_argument(
            "--queue", action="store_true", help="Only queue the job for the training workers."
        )
        parser.add_argument(
            "--nproc",
            type=int,
            default=1,
            help="Data-parallel PPO processes (torchrun, DistributedDataParallel over gloo); default 1.",
        )

    def handle(
        self,
        *args,
        workflow: str,
        org: str | None,
        config: Path | None,
        policy: str,
        queue: bool,
        nproc: int = 1,
        **opts,
    ):
        if nproc < 1:
            raise CommandError(f"--nproc: give a number of processes >= 1, not {nproc}.")
        if nproc > 1 and queue:
            raise CommandError("--nproc runs the job here, under torchrun; leave out --queue.")
        target = resolve_workflow(workflow, org)
        raw = {}
        if config is not None:
            try:
                raw = json.loads(config.read_text())
            except OSError as exc:
                raise CommandError(f"--config: cannot read {config}: {exc}") from None
            except json.JSONDecodeError as exc:
                raise CommandError(
                    f"--config: {config} line {exc.lineno} column {exc.colno}: {exc.msg}"
                ) from None
        if nproc > 1 and isinstance(raw, dict) and raw.get("algorithm", "ppo") != "ppo":
            raise CommandError(f"--nproc: data-parallel training is for PPO jobs, not {raw['algorithm']!r}.")
        actor = Actor.for_system(Organization.objects.get(pk=target.organization_id))
        try:
            job = training_job_launch(
                actor=actor, workflow=target, config=raw, policy_name=policy, enqueue=queue
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        if queue:
            self.stdout.write(f"Queued training job {job.pk}.")
            return
        started = time.monotonic()
        tty = sys.stdout.isatty()

        def show(update: int, metrics: dict[str, float]) -> None:
            line = (
                f"{progress_bar(update / job.total_updates)} update {update}/{job.total_updates} "
                f"reward {metrics.get('reward/mean', 0):.3f} acc {metrics.get('decision/accuracy', 0):.2f} "
                f"{time.monotonic() - started:5.0f}s"
            )
            if tty:
                self.stdout.write("\r" + line, ending="")
            elif update % max(1, job.total_updates // 20) == 0 or update == job.total_updates:
                self.stdout.write(line)

        trainer = None
        if nproc > 1:
            from training.rl.distributed import launch

            trainer = functools.partial(launch, nproc=nproc)
            self.stdout.write(f"Training job {job.pk} with {nproc} data-parallel processes (torchrun).")
        finished = training_job_run(job_id=job.pk, on_update=show, ppo_trainer=trainer)
        if tty:
            self.stdout.write("")
        if finished is None or finished.status != JobStatus.SUCCEEDED:
            raise CommandError(
                f"Training job {job.pk} {finished.status if finished else 'was not run'}: "
                f"{finished.error if finished else ''}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"Trained {finished.result_version} in {time.monotonic() - started:.0f}s.")
        )
        from training.management.commands.evaluate import print_report

        for report in finished.result_version.evaluations.order_by("id"):
            print_report(self.stdout, report)
