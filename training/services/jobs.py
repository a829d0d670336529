"""Training jobs: launch (validated, audited), run on a ``training`` worker, cancel, recover.

A job's life: queued → running → succeeded | failed | cancelled. A worker claims a queued job with
a compare-and-swap, so a redelivered task never trains the same job twice at once. Progress,
metrics and checkpoints persist as it goes; a job whose worker died (stale heartbeat) is put back
in the queue by :func:`training_jobs_requeue_stale` (Celery beat) and resumes from its last
checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.services import audit_record
from caseloop.webhooks import payloads as webhook_payloads  # webhooks: training_job.finished
from caseloop.webhooks.services import webhooks_emit  # webhooks: training_job.finished
from training.models import JobStatus, Policy, PolicyKind, TrainingJob, TrainingMetric
from training.rl.checkpoint import latest_checkpoint
from training.rl.lm.checkpoint import latest_lm_checkpoint
from training.rl.lm.config import LMTrainConfig
from training.rl.ppo import PPOConfig, train
from training.services.evaluation import policy_evaluate
from training.services.policies import policy_version_create
from workflows.models import Case, CaseSource, RubricVersion, Split, Workflow
from workflows.services.runs import default_rubric_version, environment_factory

logger = logging.getLogger(__name__)

ALGORITHMS = ("ppo", "lm")
STALE_AFTER = timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """What a job trains with: the algorithm's config plus the data it trains and evaluates on.
    A language-model job (algorithm ``lm``) carries ``lm``; ``ppo`` then keeps its defaults, unused."""

    ppo: PPOConfig
    include_review_cases: bool = False
    evaluate_limit: int | None = None
    lm: LMTrainConfig | None = None

    @property
    def algorithm(self) -> str:
        return "lm" if self.lm is not None else "ppo"

    @property
    def total_updates(self) -> int:
        return self.lm.total_steps if self.lm is not None else self.ppo.total_updates

    def to_dict(self) -> dict[str, Any]:
        settings = {"lm": self.lm.to_dict()} if self.lm is not None else {"ppo": dataclasses.asdict(self.ppo)}
        return {
            "algorithm": self.algorithm,
            **settings,
            "include_review_cases": self.include_review_cases,
            "evaluate_limit": self.evaluate_limit,
        }


def job_config_build(raw: Mapping[str, Any]) -> JobConfig:
    """A validated JobConfig from user input; ValidationError naming ``config.<field>`` otherwise."""
    if not isinstance(raw, Mapping):
        raise ValidationError({"config": "The config must be an object."})
    known = {"algorithm", "ppo", "lm", "include_review_cases", "evaluate_limit"}
    errors: dict[str, str] = {f"config.{k}": "unknown setting" for k in raw if k not in known}
    algorithm = raw.get("algorithm", "ppo")
    if algorithm not in ALGORITHMS:
        errors["config.algorithm"] = (
            f"Unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}."
        )
    ppo_raw = raw.get("ppo", {})
    if not isinstance(ppo_raw, Mapping):
        errors["config.ppo"] = "Must be an object of PPO settings."
        ppo_raw = {}
    fields = {f.name: f for f in dataclasses.fields(PPOConfig)}
    for name in ppo_raw:
        if name not in fields:
            errors[f"config.ppo.{name}"] = "unknown PPO setting"
    include_review = raw.get("include_review_cases", False)
    if not isinstance(include_review, bool):
        errors["config.include_review_cases"] = "Must be true or false."
    evaluate_limit = raw.get("evaluate_limit")
    if evaluate_limit is not None and (not isinstance(evaluate_limit, int) or evaluate_limit < 1):
        errors["config.evaluate_limit"] = "Must be a positive whole number of cases, or null for all."
    lm = None
    if algorithm == "lm":
        lm = _lm_config_build(raw, errors)
    elif "lm" in raw:
        errors["config.lm"] = "Language-model settings need algorithm lm."
    if errors:
        raise ValidationError(errors)
    try:
        ppo = PPOConfig(**{k: v for k, v in ppo_raw.items() if k in fields})
    except (TypeError, ValueError) as exc:
        message = str(exc)
        field = next((name for name in fields if message.startswith(name) or f"{name}:" in message), None)
        raise ValidationError({f"config.ppo.{field}" if field else "config.ppo": message}) from None
    return JobConfig(ppo=ppo, include_review_cases=include_review, evaluate_limit=evaluate_limit, lm=lm)


def _lm_config_build(raw: Mapping[str, Any], errors: dict[str, str]) -> LMTrainConfig | None:
    """The ``lm`` settings of a language-model job; problems go into ``errors`` as ``config.lm.<path>``."""
    if "ppo" in raw:
        errors["config.ppo"] = "PPO settings do not apply to algorithm lm."
    lm_raw = raw.get("lm", {})
    if not isinstance(lm_raw, Mapping):
        errors["config.lm"] = "Must be an object of language-model settings."
        return None
    try:
        lm = LMTrainConfig.from_dict(lm_raw)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        path = message.split(" ", 1)[0] if not isinstance(exc, TypeError) else ""
        errors[f"config.lm.{path}" if path else "config.lm"] = message
        return None
    base = lm.model.base_model
    if base and not (Path(base) / "config.json").is_file():
        errors["config.lm.model.base_model"] = f"{base} is not a local Hugging Face model directory."
    return lm


def training_cases(workflow: Workflow, *, include_review_cases: bool) -> list:
    cases = Case.objects.filter(workflow=workflow, split=Split.TRAIN, expected__isnull=False)
    if not include_review_cases:
        cases = cases.exclude(source=CaseSource.REVIEW)
    return [case.to_engine() for case in cases.order_by("id")]


@transaction.atomic
def training_job_launch(
    *,
    actor: Actor,
    workflow: Workflow,
    config: Mapping[str, Any],
    policy_name: str = "PPO policy",
    rubric_version: RubricVersion | None = None,
    enqueue: bool = True,
) -> TrainingJob:
    """Validate and queue a training job (admins only). The job trains a new version of the
    workflow's neural policy named ``policy_name`` (created if needed). With ``enqueue=False`` the
    caller runs it itself (``manage.py train`` does, to show a progress bar)."""
    require(actor, "training.launch")
    require_same_org(actor, workflow)
    job_config = job_config_build(config)
    errors: dict[str, str] = {}
    train_query = Case.objects.filter(workflow=workflow, split=Split.TRAIN, expected__isnull=False)
    if not job_config.include_review_cases:
        train_query = train_query.exclude(source=CaseSource.REVIEW)
    if not train_query.exists():
        errors["workflow"] = f"{workflow.name} has no labelled train cases to learn from."
    if not Case.objects.filter(workflow=workflow, split=Split.VALIDATION, expected__isnull=False).exists():
        errors["workflow"] = f"{workflow.name} has no labelled validation cases to evaluate on."
    workflow_version = workflow.latest_version
    rubric_version = rubric_version or (
        default_rubric_version(workflow_version) if workflow_version else None
    )
    if rubric_version is None:
        errors["rubric_version"] = f"{workflow.name} has no rubric to use as reward."
    elif rubric_version.rubric.workflow_id != workflow.pk:
        errors["rubric_version"] = "That rubric belongs to another workflow."
    kind = PolicyKind.LM if job_config.algorithm == "lm" else PolicyKind.MLP
    if kind == PolicyKind.LM and policy_name == "PPO policy":
        policy_name = "Language-model policy"
    policy = Policy.objects.filter(workflow=workflow, name=policy_name).first()
    if policy is not None and policy.kind != kind:
        errors["policy_name"] = (
            f"{policy_name!r} is a {policy.kind} policy; {job_config.algorithm} trains {kind} policies."
        )
    if errors:
        raise ValidationError(errors)
    if policy is None:
        policy = Policy.objects.create(
            organization=actor.organization, workflow=workflow, name=policy_name, kind=kind
        )
        audit_record(
            actor=actor, verb="policy.created", subject=policy, payload={"name": policy_name, "kind": kind}
        )
    job = TrainingJob.objects.create(
        organization=actor.organization,
        workflow=workflow,
        policy=policy,
        rubric_version=rubric_version,
        algorithm=job_config.algorithm,
        config=job_config.to_dict(),
        total_updates=job_config.total_updates,
        created_by=actor.user,
    )
    job.checkpoint_dir = str(Path(settings.ARTIFACT_DIR) / "jobs" / str(job.pk))
    job.save(update_fields=["checkpoint_dir"])
    audit_record(
        actor=actor,
        verb="training_job.launched",
        subject=job,
        payload={"workflow": workflow.pk, "policy": policy.pk, "config": job.config},
    )
    if enqueue:
        from training.tasks import run_training_job

        transaction.on_commit(lambda: run_training_job.delay(job.pk))
    return job


@transaction.atomic
def training_job_cancel(*, actor: Actor, job: TrainingJob) -> TrainingJob:
    """Cancel a queued job at once, or ask a running one to stop at its next update."""
    require(actor, "training.launch")
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    require_same_org(actor, job)
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        raise ValidationError({"status": f"The job has already {job.status}."})
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELLED
        job.finished_at = timezone.now()
    job.cancel_requested = True
    job.save(update_fields=["status", "finished_at", "cancel_requested"])
    audit_record(
        actor=actor, verb="training_job.cancel_requested", subject=job, payload={"status": job.status}
    )
    return job


def _claim(job_id: int) -> bool:
    now = timezone.now()
    return (
        TrainingJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, attempts=F("attempts") + 1, heartbeat_at=now, started_at=now
        )
        == 1
    )


def _finish(job: TrainingJob, status: str, *, verb: str, payload: dict[str, Any], **fields: Any) -> None:
    with transaction.atomic():
        TrainingJob.objects.filter(pk=job.pk).update(status=status, finished_at=timezone.now(), **fields)
        audit_record(actor=Actor.for_system(job.organization), verb=verb, subject=job, payload=payload)
        # --- webhooks: training_job.finished, with the job as stored (read only if someone subscribes)
        webhooks_emit(
            organization=job.organization,
            event="training_job.finished",
            payload=lambda: webhook_payloads.training_job_finished(
                TrainingJob.objects.select_related("workflow", "policy", "result_version").get(pk=job.pk)
            ),
        )
        # --- end webhooks ---


def training_job_run(
    *,
    job_id: int,
    on_update: Callable[[int, dict[str, float]], None] | None = None,
    ppo_trainer: Callable[..., Any] | None = None,
) -> TrainingJob | None:
    """Claim and run one job (the ``training`` worker's task body). Returns None when the job was
    not queued (already taken, finished or cancelled). ``on_update`` sees each update's metrics.
    ``ppo_trainer`` stands in for ``training.rl.ppo.train`` (operations: ``manage.py train --nproc N``
    passes the data-parallel launcher of ``training.rl.distributed``)."""
    if not _claim(job_id):
        return None
    job = TrainingJob.objects.select_related("workflow", "policy", "rubric_version", "organization").get(
        pk=job_id
    )
    system = Actor.for_system(job.organization)
    job_config = job_config_build(job.config)
    workflow_version = job.workflow.latest_version
    factory = environment_factory(workflow_version, job.rubric_version)
    cases = training_cases(job.workflow, include_review_cases=job_config.include_review_cases)
    find_checkpoint = latest_lm_checkpoint if job_config.lm is not None else latest_checkpoint
    previous = find_checkpoint(job.checkpoint_dir) if Path(job.checkpoint_dir).exists() else None
    if previous is not None:
        TrainingJob.objects.filter(pk=job.pk).update(checkpoint_update=previous.update)
        with transaction.atomic():
            audit_record(
                actor=system,
                verb="training_job.resumed",
                subject=job,
                payload={"from_update": previous.update},
            )

    def sink(update: int, metrics: dict[str, float]) -> None:
        TrainingMetric.objects.update_or_create(
            job=job,
            update=update,
            defaults={"values": metrics, "env_steps": int(metrics.get("time/env_steps", 0))},
        )
        TrainingJob.objects.filter(pk=job.pk).update(
            update=update, progress=min(1.0, update / max(1, job.total_updates)), heartbeat_at=timezone.now()
        )
        if on_update is not None:
            on_update(update, metrics)

    def should_stop() -> bool:
        return TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists()

    try:
        if job_config.lm is not None:
            result = _train_lm(job, job_config.lm, factory, cases, sink, should_stop)
        else:
            result = (ppo_trainer or train)(
                job_config.ppo,
                env_factory=factory,
                train_cases=cases,
                metrics_sink=sink,
                checkpoint_dir=job.checkpoint_dir,
                should_stop=should_stop,
                resume=True,
            )
    except Exception as exc:  # the job records any failure; earlier checkpoints stay on disk
        logger.exception("training job %s failed", job.pk)
        _finish(
            job,
            JobStatus.FAILED,
            verb="training_job.failed",
            payload={"error": f"{type(exc).__name__}: {exc}"},
            error="".join(traceback.format_exception_only(exc)).strip(),
        )
        return TrainingJob.objects.get(pk=job.pk)
    checkpoint_update = result.updates if result.checkpoint else None
    if should_stop():
        _finish(
            job,
            JobStatus.CANCELLED,
            verb="training_job.cancelled",
            payload={"update": result.updates},
            checkpoint_update=checkpoint_update,
        )
        return TrainingJob.objects.get(pk=job.pk)
    try:
        with transaction.atomic():
            checkpoint = find_checkpoint(job.checkpoint_dir)
            algorithm = job_config.algorithm
            version = policy_version_create(
                actor=system,
                policy=job.policy,
                config={"algorithm": algorithm, "job": job.pk, algorithm: job.config[algorithm]},
                artifact_path=str(checkpoint.path) if checkpoint else "",
                artifact_hash=checkpoint.metadata["weights_sha256"] if checkpoint else "",
                metrics=result.metrics,
            )
        for split in (Split.VALIDATION, Split.TEST):
            if Case.objects.filter(workflow=job.workflow, split=split, expected__isnull=False).exists():
                policy_evaluate(
                    actor=system,
                    version=version,
                    split=split,
                    rubric_version=job.rubric_version,
                    limit=job_config.evaluate_limit,
                )
    except Exception as exc:
        logger.exception("training job %s failed after training", job.pk)
        _finish(
            job,
            JobStatus.FAILED,
            verb="training_job.failed",
            payload={"error": f"{type(exc).__name__}: {exc}", "stage": "evaluation"},
            error="".join(traceback.format_exception_only(exc)).strip(),
        )
        return TrainingJob.objects.get(pk=job.pk)
    _finish(
        job,
        JobStatus.SUCCEEDED,
        verb="training_job.finished",
        payload={"version": version.pk, "updates": result.updates, "metrics": result.metrics},
        result_version=version,
        progress=1.0,
        checkpoint_update=checkpoint_update,
    )
    return TrainingJob.objects.get(pk=job.pk)


def _train_lm(
    job: TrainingJob,
    config: LMTrainConfig,
    factory: Callable[[], Any],
    cases: list,
    sink: Callable[[int, dict[str, float]], None],
    should_stop: Callable[[], bool],
) -> Any:
    """The ``lm`` branch of :func:`training_job_run`: SFT on demonstrations (the pack's reference
    solver on labelled train cases, and every reviewer-labelled case), then GRPO on ``cases``."""
    from training.rl.lm.train import train as train_lm
    from workflows.services.runs import environment_parts

    spec, _, _, pack = environment_parts(job.workflow.latest_version)
    review_ids = Case.objects.filter(
        workflow=job.workflow, split=Split.TRAIN, source=CaseSource.REVIEW, expected__isnull=False
    ).values_list("pk", flat=True)
    return train_lm(
        config,
        env_factory=factory,
        train_cases=cases,
        demo_cases=training_cases(job.workflow, include_review_cases=True),
        solver=pack.solver(spec) if pack is not None else None,
        review_case_ids=frozenset(str(pk) for pk in review_ids),
        metrics_sink=sink,
        checkpoint_dir=job.checkpoint_dir,
        should_stop=should_stop,
        resume=True,
    )


def training_jobs_requeue_stale(*, stale_after: timedelta = STALE_AFTER) -> list[int]:
    """Put running jobs whose worker stopped beating back in the queue (run by Celery beat)."""
    from training.tasks import run_training_job

    cutoff = timezone.now() - stale_after
    requeued = []
    stale = TrainingJob.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
    )
    for job in stale.select_related("organization"):
        with transaction.atomic():
            moved = TrainingJob.objects.filter(
                pk=job.pk, status=JobStatus.RUNNING, heartbeat_at=job.heartbeat_at
            ).update(status=JobStatus.QUEUED)
            if moved:
                audit_record(
                    actor=Actor.for_system(job.organization),
                    verb="training_job.requeued",
                    subject=job,
                    payload={"last_heartbeat": job.heartbeat_at, "update": job.update},
                )
                transaction.on_commit(lambda pk=job.pk: run_training_job.delay(pk))
                requeued.append(job.pk)
    return requeued
