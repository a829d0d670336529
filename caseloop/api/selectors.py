"""Reads the API needs beyond ``workflows.selectors``, each scoped to the actor's organisation and
checked against the actor's permission. Lists return querysets for the views to paginate."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Max, Prefetch, QuerySet

from caseloop.accounts.permissions import Actor, require
from training.models import EvaluationReport, Policy, PolicyVersion, TrainingJob, TrainingMetric
from workflows import selectors as workflow_selectors
from workflows.models import (
    Case,
    Decision,
    DecisionStatus,
    Review,
    Rubric,
    RubricVersion,
    Workflow,
    WorkflowVersion,
)


def workflows(*, actor: Actor) -> QuerySet[Workflow]:
    return workflow_selectors.workflow_list(actor=actor).annotate(latest_number=Max("versions__number"))


def workflow_versions(*, actor: Actor, workflow: Workflow) -> QuerySet[WorkflowVersion]:
    require(actor, "workflow.view")
    return WorkflowVersion.objects.filter(
        workflow=workflow, workflow__organization=actor.organization
    ).order_by("-number")


def rubrics(*, actor: Actor, workflow: Workflow | None = None) -> QuerySet[Rubric]:
    require(actor, "workflow.view")
    found = Rubric.objects.filter(workflow__organization=actor.organization)
    if workflow is not None:
        found = found.filter(workflow=workflow)
    return found.annotate(latest_number=Max("versions__number"))


def rubric_versions(*, actor: Actor, rubric: Rubric) -> QuerySet[RubricVersion]:
    require(actor, "workflow.view")
    return RubricVersion.objects.filter(
        rubric=rubric, rubric__workflow__organization=actor.organization
    ).order_by("-number")


def cases(
    *,
    actor: Actor,
    workflow: Workflow | None = None,
    split: str | None = None,
    status: str | None = None,
    source: str | None = None,
    external_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Case]:
    found = workflow_selectors.case_list(actor=actor, workflow=workflow, split=split)
    if status:
        found = found.filter(status=status)
    if source:
        found = found.filter(source=source)
    if external_id:
        found = found.filter(external_id=external_id)
    if created_after is not None:
        found = found.filter(created_at__gte=created_after)
    if created_before is not None:
        found = found.filter(created_at__lt=created_before)
    return with_decision(found)


def with_decision(found: QuerySet[Case]) -> QuerySet[Case]:
    """Cases with their workflow version and production decision loaded in two queries, not 2n."""
    decisions = Decision.objects.exclude(status=DecisionStatus.SHADOW).order_by("-created_at", "-id")
    return found.select_related("workflow_version").prefetch_related(
        Prefetch("decisions", queryset=decisions, to_attr="production_decisions")
    )


def decisions(
    *,
    actor: Actor,
    status: str | None = None,
    workflow: Workflow | None = None,
    case: Case | None = None,
    policy_version: PolicyVersion | None = None,
) -> QuerySet[Decision]:
    found = workflow_selectors.decision_list(actor=actor, status=status)
    if workflow is not None:
        found = found.filter(case__workflow=workflow)
    if case is not None:
        found = found.filter(case=case)
    if policy_version is not None:
        found = found.filter(policy_version=policy_version)
    return found


def reviews(*, actor: Actor, decision: Decision) -> QuerySet[Review]:
    return workflow_selectors.decision_reviews(actor=actor, decision=decision)


def policies(*, actor: Actor, workflow: Workflow | None = None) -> QuerySet[Policy]:
    require(actor, "policy.view")
    found = Policy.objects.filter(organization=actor.organization)
    return found.filter(workflow=workflow) if workflow is not None else found


def policy_versions(
    *, actor: Actor, policy: Policy | None = None, stage: str | None = None
) -> QuerySet[PolicyVersion]:
    require(actor, "policy.view")
    found = PolicyVersion.objects.filter(policy__organization=actor.organization)
    if policy is not None:
        found = found.filter(policy=policy)
    if stage:
        found = found.filter(stage=stage)
    return found


def evaluations(*, actor: Actor, version: PolicyVersion) -> QuerySet[EvaluationReport]:
    require(actor, "policy.view")
    return EvaluationReport.objects.filter(organization=actor.organization, policy_version=version)


def training_jobs(
    *, actor: Actor, workflow: Workflow | None = None, status: str | None = None
) -> QuerySet[TrainingJob]:
    require(actor, "training.view")
    found = TrainingJob.objects.filter(organization=actor.organization)
    if workflow is not None:
        found = found.filter(workflow=workflow)
    if status:
        found = found.filter(status=status)
    return found


def training_metrics(*, actor: Actor, job: TrainingJob, after_update: int | None = None) -> QuerySet:
    require(actor, "training.view")
    found = TrainingMetric.objects.filter(job=job, job__organization=actor.organization).order_by("update")
    return found.filter(update__gt=after_update) if after_update is not None else found
