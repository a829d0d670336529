"""Reads for the training pages: jobs, their metric series, policy versions and evaluation reports,
always scoped to the actor's organisation."""

from __future__ import annotations

import math
from typing import Any

from django.db.models import F, Q, QuerySet
from django.db.models.functions import Mod

from caseloop.accounts.permissions import Actor, require
from training.models import EvaluationReport, JobStatus, PolicyVersion, TrainingJob, TrainingMetric
from workflows.models import Workflow

# Metric series are thinned to about this many points per chart: a 3,000-update job stays cheap to
# poll every two seconds while it runs.
MAX_CHART_POINTS = 400
ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


def training_job_list(*, actor: Actor, workflow: Workflow | None = None) -> QuerySet[TrainingJob]:
    require(actor, "training.view")
    jobs = TrainingJob.objects.filter(organization=actor.organization)
    if workflow is not None:
        jobs = jobs.filter(workflow=workflow)
    return jobs.select_related("workflow", "policy", "result_version__policy", "created_by").order_by(
        "-created_at", "-id"
    )


# JSON the job list never shows: decoding it for every row cost more than the page's queries.
LIST_DEFERRED = (
    "config",
    "error",
    "workflow__review_settings",
    "workflow__description",
    "result_version__config",
    "result_version__metrics",
)


def training_job_rows(*, actor: Actor) -> QuerySet[TrainingJob]:
    """The job list's rows: :func:`training_job_list` without the JSON a list never shows."""
    return training_job_list(actor=actor).defer(*LIST_DEFERRED)


def training_job_get(*, actor: Actor, job_id: int) -> TrainingJob:
    """The organisation's job; TrainingJob.DoesNotExist for another organisation's."""
    return training_job_list(actor=actor).select_related("rubric_version__rubric").get(pk=job_id)


def training_metric_series(*, job: TrainingJob, max_points: int = MAX_CHART_POINTS) -> list[tuple[int, dict]]:
    """(update, metrics) of ``job`` in update order, thinned to about ``max_points`` by keeping every
    k-th update (and always the latest), so a chart costs the same however long the job ran."""
    metrics = TrainingMetric.objects.filter(job=job)
    updates = max(job.update, job.total_updates if job.status in ACTIVE_JOB_STATUSES else 0, 1)
    stride = max(1, math.ceil(updates / max_points))
    if stride > 1:
        metrics = metrics.annotate(kept=Mod(F("update"), stride)).filter(Q(kept=0) | Q(update=job.update))
    return list(metrics.order_by("update").values_list("update", "values"))


def policy_version_list(*, actor: Actor) -> QuerySet[PolicyVersion]:
    require(actor, "policy.view")
    return (
        PolicyVersion.objects.filter(policy__organization=actor.organization)
        .select_related("policy__workflow")
        .order_by("-created_at", "-id")
    )


def policy_version_get(*, actor: Actor, version_id: int) -> PolicyVersion:
    """The organisation's version; PolicyVersion.DoesNotExist for another organisation's."""
    return policy_version_list(actor=actor).get(pk=version_id)


def evaluation_list(*, actor: Actor, version: PolicyVersion | None = None) -> QuerySet[EvaluationReport]:
    require(actor, "policy.view")
    reports = EvaluationReport.objects.filter(organization=actor.organization)
    if version is not None:
        reports = reports.filter(policy_version=version)
    return reports.select_related(
        "policy_version__policy__workflow", "production_version__policy", "rubric_version__rubric"
    ).order_by("-created_at", "-id")


def evaluation_get(*, actor: Actor, report_id: int) -> EvaluationReport:
    """The organisation's report; EvaluationReport.DoesNotExist for another organisation's."""
    return evaluation_list(actor=actor).get(pk=report_id)


def version_jobs(*, actor: Actor, version: PolicyVersion) -> list[TrainingJob]:
    """The jobs that produced ``version`` (normally one)."""
    return list(training_job_list(actor=actor).filter(result_version=version))


def comparison_rows(report: EvaluationReport) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, metrics) for the report's version, production and each baseline, in that order;
    kind is "version", "production" or "baseline"."""
    rows: list[tuple[str, str, dict[str, Any]]] = [(str(report.policy_version), "version", report.metrics)]
    if report.production is not None:
        rows.append((f"production: {report.production_version}", "production", report.production))
    rows += [(name, "baseline", metrics) for name, metrics in (report.baselines or {}).items()]
    return rows
