"""Training pages: launch, job list with live progress, job detail, evaluation reports, promotion.

Running jobs refresh themselves: the job list and a job's live panel carry an htmx poll (every
2 s) only while something is queued or running, and the server answers a poll with the same
fragment, so polling stops by itself when the job finishes.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from caseloop import formatting
from caseloop.accounts.decorators import role_required
from caseloop.charts import Bar, Series, bar_chart, line_chart
from training import selectors
from training.forms import TrainingLaunchForm
from training.models import PRODUCTION_STAGES, EvaluationReport, PolicyVersion, Stage, TrainingJob
from training.services.jobs import training_job_cancel, training_job_launch
from training.services.policies import autonomy_agreement_check, policy_version_promote, promotion_check
from workflows.selectors import production_policy_version, workflow_list

PER_PAGE_CHOICES = (10, 25, 50, 100)
# Columns of the evaluation comparison table: metric key, heading, how to show it.
COMPARISON_COLUMNS = (
    ("score/mean", "Mean score", "float"),
    ("score/min", "Min score", "float"),
    ("outcome/accuracy", "Accuracy", "percent"),
    ("outcome/exact", "Exact", "percent"),
    ("amount/mae", "Amount MAE", "float"),
    ("gates/triggered", "Gates", "int"),
    ("episode/length", "Steps", "float"),
)
REWARD_TOTALS = ("reward/mean", "reward/rubric")


def _svg(markup: str) -> str:
    return mark_safe(markup)  # noqa: S308 - caseloop.charts escapes every text it draws


def _per_page(request, default: int = 25) -> int:
    try:
        value = int(request.GET.get("per_page", default))
    except ValueError:
        return default
    return value if value in PER_PAGE_CHOICES else default


def _is_fragment(request) -> bool:
    return request.GET.get("fragment") == "live"


def _job(request, job_id: int) -> TrainingJob:
    try:
        return selectors.training_job_get(actor=request.actor, job_id=job_id)
    except TrainingJob.DoesNotExist:
        raise Http404("No such training job in this organisation.") from None


def _version(request, version_id: int) -> PolicyVersion:
    try:
        return selectors.policy_version_get(actor=request.actor, version_id=version_id)
    except PolicyVersion.DoesNotExist:
        raise Http404("No such policy version in this organisation.") from None


# --------------------------------------------------------------------------- jobs


@role_required("training.view")
@require_GET
def job_list(request):
    per_page = _per_page(request)
    page = Paginator(selectors.training_job_rows(actor=request.actor), per_page).get_page(
        request.GET.get("page")
    )
    jobs = list(page.object_list)
    now = timezone.now()
    context = {
        "page": page,
        "jobs": jobs,
        "rows": [
            {
                "job": job,
                "percent": round(job.progress * 100),
                "launched": f"{formatting.duration(now - job.created_at)} ago",
            }
            for job in jobs
        ],
        "active": any(job.status in selectors.ACTIVE_JOB_STATUSES for job in jobs),
        "per_page": per_page,
        "per_page_choices": PER_PAGE_CHOICES,
        "query": f"per_page={per_page}",
        "can_launch": request.actor.can("training.launch"),
    }
    if _is_fragment(request):
        return render(request, "training/_job_rows.html", context)
    context["versions"] = list(selectors.policy_version_list(actor=request.actor)[:10])
    return render(request, "training/job_list.html", context)


@role_required("training.launch")
@require_http_methods(["GET", "POST"])
def job_launch(request):
    workflows = workflow_list(actor=request.actor).order_by("name")
    form = TrainingLaunchForm(request.POST or None, workflows=workflows)
    if request.method == "POST" and form.is_valid():
        try:
            job = training_job_launch(
                actor=request.actor,
                workflow=form.cleaned_data["workflow"],
                config=form.config(),
                policy_name=form.cleaned_data["policy_name"].strip(),
            )
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            messages.success(request, f"Training job {job.pk} launched.")
            return redirect("training-job-detail", job.pk)
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "training/job_launch.html", {"form": form}, status=status)


def _reward_charts(job: TrainingJob, series: list[tuple[int, dict]]) -> dict[str, str]:
    totals = [
        Series(name, [(u, v[name]) for u, v in series if isinstance(v.get(name), (int, float))])
        for name in REWARD_TOTALS
    ]
    criteria = sorted(
        {
            key
            for _, values in series
            for key in values
            if key.startswith("reward/") and key not in REWARD_TOTALS
        }
    )
    per_criterion = [
        Series(key.removeprefix("reward/"), [(u, v[key]) for u, v in series if key in v]) for key in criteria
    ]
    other = [
        Series(name, [(u, v[name]) for u, v in series if name in v])
        for name in ("decision/accuracy", "episode/gated")
    ]
    return {
        "total": _svg(
            line_chart(
                totals, title=f"Reward of job {job.pk}", x_label="update", y_label="reward per episode"
            )
        ),
        "criteria": _svg(
            line_chart(
                per_criterion,
                title=f"Reward per criterion, job {job.pk}",
                x_label="update",
                y_label="criterion score",
            )
        ),
        "quality": _svg(
            line_chart(
                other,
                title=f"Decision accuracy and gated episodes, job {job.pk}",
                x_label="update",
                y_label="share of episodes",
                y_min=0.0,
                y_max=1.0,
            )
        ),
    }


@role_required("training.view")
@require_GET
def job_detail(request, job_id: int):
    job = _job(request, job_id)
    series = selectors.training_metric_series(job=job)
    latest = series[-1][1] if series else {}
    context: dict[str, Any] = {
        "job": job,
        "active": job.status in selectors.ACTIVE_JOB_STATUSES,
        "charts": _reward_charts(job, series),
        "latest": sorted((k, v) for k, v in latest.items() if isinstance(v, (int, float))),
        "points": len(series),
        "can_launch": request.actor.can("training.launch"),
        "reports": (
            list(selectors.evaluation_list(actor=request.actor, version=job.result_version))
            if job.result_version_id
            else []
        ),
    }
    if _is_fragment(request):
        return render(request, "training/_job_live.html", context)
    context["config"] = sorted((job.config.get("ppo") or job.config.get("lm") or {}).items())
    return render(request, "training/job_detail.html", context)


@role_required("training.launch")
@require_POST
def job_cancel(request, job_id: int):
    job = _job(request, job_id)
    try:
        training_job_cancel(actor=request.actor, job=job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.info(request, f"Training job {job.pk}: cancellation requested.")
    return redirect("training-job-detail", job.pk)


# --------------------------------------------------------------------------- evaluation


def _shown(value: Any, how: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "-"
    if how == "percent":
        return f"{value:.1%}"
    if how == "int":
        return f"{int(value)}"
    return f"{value:.3f}"


@role_required("policy.view")
@require_GET
def evaluation_detail(request, report_id: int):
    try:
        report = selectors.evaluation_get(actor=request.actor, report_id=report_id)
    except EvaluationReport.DoesNotExist:
        raise Http404("No such evaluation in this organisation.") from None
    rows = selectors.comparison_rows(report)
    table = [
        {
            "label": label,
            "kind": kind,
            "cells": [_shown(metrics.get(key), how) for key, _, how in COMPARISON_COLUMNS],
        }
        for label, kind, metrics in rows
    ]
    version_label = str(report.policy_version)
    comparison = bar_chart(
        [
            Bar(label, [metrics.get("score/mean"), metrics.get("outcome/accuracy")])
            for label, _, metrics in rows
        ],
        series=["mean rubric score", "decision accuracy"],
        title=f"{version_label} against production and the baselines, {report.split} split",
        value_label="score / accuracy (0 to 1)",
        value_min=0.0,
        value_max=1.0,
        highlight=version_label,
    )
    criteria = sorted({k for _, _, m in rows for k in m if k.startswith("pass_rate/")})
    compared = [(label, metrics) for label, kind, metrics in rows if kind in ("version", "production")]
    reference = next((m for label, _, m in rows if label == "reference_solver"), None)
    if reference is not None:
        compared.append(("reference_solver", reference))
    pass_rates = bar_chart(
        [Bar(key.removeprefix("pass_rate/"), [m.get(key) for _, m in compared]) for key in criteria],
        series=[label for label, _ in compared],
        title=f"Pass rate per rubric criterion, {report.split} split",
        value_label="share of episodes where the criterion applied and passed",
        value_min=0.0,
        value_max=1.0,
    )
    confusion = report.metrics.get("confusion") or {}
    chosen = sorted({c for row in confusion.values() for c in row})
    matrix = [
        {
            "expected": expected,
            "cells": [(row.get(c, 0), c == expected) for c in chosen],
            "total": sum(row.values()),
        }
        for expected, row in sorted(confusion.items())
    ]
    return render(
        request,
        "training/evaluation_detail.html",
        {
            "report": report,
            "version": report.policy_version,
            "columns": [heading for _, heading, _ in COMPARISON_COLUMNS],
            "table": table,
            "comparison_chart": _svg(comparison),
            "pass_rate_chart": _svg(pass_rates) if criteria else None,
            "pass_rates": [
                (key.removeprefix("pass_rate/"), [_shown(m.get(key), "percent") for _, m in compared])
                for key in criteria
            ],
            "compared_labels": [label for label, _ in compared],
            "chosen": chosen,
            "matrix": matrix,
            "gates": report.metrics.get("gates/by_criterion") or {},
            "can_promote": request.actor.can("policy.promote"),
            "stages": _promotion_targets(report.policy_version),
        },
    )


# --------------------------------------------------------------------------- versions and promotion


def _promotion_targets(version: PolicyVersion) -> list[tuple[str, str]]:
    return [(value, label) for value, label in Stage.choices if value != version.stage]


@role_required("policy.view")
@require_GET
def version_detail(request, version_id: int):
    version = _version(request, version_id)
    return render(
        request,
        "training/version_detail.html",
        {
            "version": version,
            "reports": [
                {
                    "report": r,
                    "score": _shown(r.metrics.get("score/mean"), "float"),
                    "production": _shown((r.production or {}).get("score/mean"), "float"),
                    "accuracy": _shown(r.metrics.get("outcome/accuracy"), "percent"),
                }
                for r in selectors.evaluation_list(actor=request.actor, version=version)
            ],
            "jobs": selectors.version_jobs(actor=request.actor, version=version),
            "production": production_policy_version(workflow=version.policy.workflow),
            "can_promote": request.actor.can("policy.promote"),
            "stages": _promotion_targets(version),
            "metrics": sorted(
                (k, v) for k, v in (version.metrics or {}).items() if isinstance(v, (int, float))
            ),
        },
    )


def _promotion_preview(version: PolicyVersion, stage: str) -> dict[str, Any]:
    """What promoting ``version`` to ``stage`` would do, and why it may be refused, before the admin
    confirms: the same checks the service makes (it makes them again on confirmation)."""
    production = production_policy_version(workflow=version.policy.workflow)
    refusal = promotion_check(version) if stage in PRODUCTION_STAGES else None
    agreement_refusal, agreement = None, None
    if stage == Stage.AUTONOMOUS:
        try:
            agreement = autonomy_agreement_check(version)
        except ValidationError as exc:
            agreement_refusal = " ".join(exc.messages)
    retires = (
        production if stage in PRODUCTION_STAGES and production and production.pk != version.pk else None
    )
    return {
        "production": production,
        "refusal": refusal,
        "agreement": agreement,
        "agreement_refusal": agreement_refusal,
        "retires": retires,
    }


@role_required("policy.promote")
@require_http_methods(["GET", "POST"])
def version_promote(request, version_id: int):
    version = _version(request, version_id)
    stage = request.POST.get("stage") or request.GET.get("stage", "")
    if stage not in Stage.values:
        messages.error(request, f"Choose a stage to promote to: {', '.join(Stage.values)}.")
        return redirect("policy-version-detail", version.pk)
    errors: dict[str, list[str]] = {}
    force = request.POST.get("force") == "on"
    reason = request.POST.get("reason", "")
    if request.method == "POST":
        try:
            policy_version_promote(
                actor=request.actor, version=version, stage=stage, reason=reason, force=force
            )
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"version": exc.messages}
        else:
            messages.success(request, f"{version} is now {Stage(stage).label.lower()}.")
            return redirect("policy-version-detail", version.pk)
    return render(
        request,
        "training/version_promote.html",
        {
            "version": version,
            "stage": stage,
            "stage_label": Stage(stage).label,
            "force": force,
            "reason": reason,
            "errors": errors,
            "error_list": [" ".join(v) for v in errors.values()],
            **_promotion_preview(version, stage),
        },
        status=400 if errors else 200,
    )


urlpatterns = [
    path("", job_list, name="training-job-list"),
    path("new/", job_launch, name="training-job-launch"),
    path("jobs/<int:job_id>/", job_detail, name="training-job-detail"),
    path("jobs/<int:job_id>/cancel/", job_cancel, name="training-job-cancel"),
    path("evaluations/<int:report_id>/", evaluation_detail, name="evaluation-detail"),
    path("versions/<int:version_id>/", version_detail, name="policy-version-detail"),
    path("versions/<int:version_id>/promote/", version_promote, name="policy-version-promote"),
]
