"""Reads for workflows, cases, runs and decisions, always scoped to the actor's organisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from caseloop.accounts.permissions import Actor, require
from training.models import PRODUCTION_STAGES, PolicyVersion
from workflows.models import Case, Decision, DecisionStatus, Run, Workflow


def workflow_list(*, actor: Actor) -> QuerySet[Workflow]:
    require(actor, "workflow.view")
    return Workflow.objects.filter(organization=actor.organization)


def workflow_get(*, actor: Actor, workflow_id: int) -> Workflow:
    return workflow_list(actor=actor).get(pk=workflow_id)


def case_list(*, actor: Actor, workflow: Workflow | None = None, split: str | None = None) -> QuerySet[Case]:
    require(actor, "case.view")
    cases = Case.objects.filter(organization=actor.organization)
    if workflow is not None:
        cases = cases.filter(workflow=workflow)
    if split:
        cases = cases.filter(split=split)
    return cases


def decision_list(*, actor: Actor, status: str | None = None) -> QuerySet[Decision]:
    require(actor, "decision.view")
    decisions = Decision.objects.filter(organization=actor.organization).select_related(
        "case", "policy_version"
    )
    return decisions.filter(status=status) if status else decisions


def run_list(*, actor: Actor) -> QuerySet[Run]:
    require(actor, "decision.view")
    return Run.objects.filter(organization=actor.organization)


def production_policy_version(*, workflow: Workflow) -> PolicyVersion | None:
    """The version that decides live cases: the newest one in a production stage."""
    return (
        PolicyVersion.objects.filter(policy__workflow=workflow, stage__in=PRODUCTION_STAGES)
        .select_related("policy")
        .order_by("-promoted_at", "-id")
        .first()
    )


@dataclass(frozen=True)
class WorkflowOverview:
    workflow: Workflow
    cases_by_split: dict[str, int]
    production: PolicyVersion | None
    decisions_by_status: dict[str, int]


def organization_overview(*, actor: Actor) -> dict[str, Any]:
    """What the dashboard shows: per workflow, its cases, its production policy and its decisions."""
    workflows = list(workflow_list(actor=actor).annotate(n_cases=Count("cases")))
    overviews = []
    for workflow in workflows:
        by_split = dict(
            Case.objects.filter(workflow=workflow).values_list("split").annotate(n=Count("id")).order_by()
        )
        by_status = dict(
            Decision.objects.filter(case__workflow=workflow)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        overviews.append(
            WorkflowOverview(
                workflow=workflow,
                cases_by_split=by_split,
                production=production_policy_version(workflow=workflow),
                decisions_by_status=by_status,
            )
        )
    decisions = Decision.objects.filter(organization=actor.organization)
    totals = decisions.aggregate(
        total=Count("id"),
        pending=Count("id", filter=Q(status=DecisionStatus.PENDING_REVIEW)),
        executed=Count("id", filter=Q(status=DecisionStatus.EXECUTED)),
    )
    return {
        "workflows": overviews,
        "totals": totals,
        "recent_decisions": list(decisions.select_related("case")[:10]) if actor.can("decision.view") else [],
    }
