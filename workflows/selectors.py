"""Reads for workflows, cases, runs and decisions, always scoped to the actor's organisation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, F, Min, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from caseloop.accounts.permissions import Actor, require, require_same_org
from training.models import PRODUCTION_STAGES, PolicyVersion, Stage
from workflows.engine.environment import CaseData, Outcome
from workflows.models import Case, Decision, DecisionStatus, Review, ReviewOutcome, Run, Workflow
from workflows.review_settings import ReviewSettings, risk_level_name


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


# --------------------------------------------------------------------------- review


def review_settings_for(*, workflow: Workflow) -> ReviewSettings:
    """The workflow's autonomy and review settings (defaults for what it has not set)."""
    return ReviewSettings.from_dict(workflow.review_settings)


@dataclass(frozen=True)
class ReviewQueueItem:
    """One decision waiting for review, with its age against the workflow's service level."""

    decision: Decision
    risk_level: str
    age: timedelta
    due_at: datetime
    overdue: bool
    service_level_hours: float
    approvals: int
    approvals_required: int
    claimed_by_id: int | None
    claim_active: bool


def pending_reviews(*, actor: Actor, workflow: Workflow | None = None) -> QuerySet[Decision]:
    """Decisions waiting for review, by priority: highest risk first, then oldest first.
    ``approvals`` counts the approvals already given in the current round (four-eyes)."""
    require(actor, "decision.view")
    decisions = Decision.objects.filter(organization=actor.organization, status=DecisionStatus.PENDING_REVIEW)
    if workflow is not None:
        require_same_org(actor, workflow)
        decisions = decisions.filter(case__workflow=workflow)
    return (
        decisions.select_related("case__workflow", "policy_version__policy", "claimed_by")
        .annotate(approvals=Count("reviews", filter=Q(reviews__round=F("review_round"))))
        .order_by("-risk_level", "review_requested_at", "id")
    )


def review_queue(
    *, actor: Actor, workflow: Workflow | None = None, now: datetime | None = None, limit: int = 100
) -> list[ReviewQueueItem]:
    """The first ``limit`` items of the review queue, each with its age, due time and claim."""
    now = now or timezone.now()
    return _review_queue_items(pending_reviews(actor=actor, workflow=workflow)[:limit], now)


def _review_queue_items(decisions: Any, now: datetime) -> list[ReviewQueueItem]:
    """Queue items for ``decisions`` (rows of :func:`pending_reviews`): age, due time, claim."""
    settings_by_workflow: dict[int, ReviewSettings] = {}
    items = []
    for decision in decisions:
        workflow_ = decision.case.workflow
        settings = settings_by_workflow.get(workflow_.pk)
        if settings is None:
            settings = settings_by_workflow[workflow_.pk] = review_settings_for(workflow=workflow_)
        since = decision.review_requested_at or decision.created_at
        due_at = since + timedelta(hours=settings.service_level_hours)
        claim_active = bool(
            decision.claimed_by_id and decision.claim_expires_at and decision.claim_expires_at > now
        )
        items.append(
            ReviewQueueItem(
                decision=decision,
                risk_level=risk_level_name(decision.risk_level),
                age=now - since,
                due_at=due_at,
                overdue=now > due_at,
                service_level_hours=settings.service_level_hours,
                approvals=decision.approvals,  # type: ignore[attr-defined]
                approvals_required=decision.approvals_required,
                claimed_by_id=decision.claimed_by_id if claim_active else None,
                claim_active=claim_active,
            )
        )
    return items


def decision_reviews(*, actor: Actor, decision: Decision) -> QuerySet[Review]:
    require(actor, "decision.view")
    require_same_org(actor, decision)
    return Review.objects.filter(decision=decision).select_related("reviewer").order_by("created_at", "id")


# --------------------------------------------------------------------------- agreement with reviewers


def _reviewed(version: PolicyVersion) -> QuerySet[Decision]:
    # Every reviewed decision has reviewed_at; saying so lets the (policy_version, reviewed_at) index
    # serve "the last N reviewed" without reading the version's unreviewed decisions first.
    return Decision.objects.filter(policy_version=version, reviewed_at__isnull=False).exclude(
        review_outcome=""
    )


def policy_version_agreement(version: PolicyVersion, last_n: int | None = None) -> tuple[float, int]:
    """(agreement rate, number of reviewed decisions) of ``version`` over its last ``last_n``
    reviewed decisions (all of them when None).

    A reviewed decision agrees when reviewers approved it as proposed; a correction or a rejection
    disagrees. Decisions executed autonomously, shadow decisions and those still pending are not
    reviewed and do not count. The rate is 0.0 when nothing was reviewed: read it with the count."""
    outcomes = _reviewed(version).order_by("-reviewed_at", "-id").values_list("review_outcome", flat=True)
    if last_n is not None:
        outcomes = outcomes[:last_n]
    listed = list(outcomes)
    if not listed:
        return 0.0, 0
    agreed = sum(1 for outcome in listed if outcome == ReviewOutcome.APPROVED)
    return agreed / len(listed), len(listed)


@dataclass(frozen=True)
class AgreementPoint:
    day: date
    reviewed: int
    agreed: int

    @property
    def rate(self) -> float:
        return self.agreed / self.reviewed if self.reviewed else 0.0


def policy_version_agreement_series(
    version: PolicyVersion, *, since: datetime | None = None
) -> list[AgreementPoint]:
    """Agreement with reviewers per day (UTC) of review, oldest first: the curve over time."""
    decisions = _reviewed(version)
    if since is not None:
        decisions = decisions.filter(reviewed_at__gte=since)
    rows = (
        decisions.annotate(day=TruncDate("reviewed_at"))
        .values("day")
        .annotate(reviewed=Count("id"), agreed=Count("id", filter=Q(review_outcome=ReviewOutcome.APPROVED)))
        .order_by("day")
    )
    return [AgreementPoint(row["day"], row["reviewed"], row["agreed"]) for row in rows]


def outcomes_agree(left: dict[str, Any], right: dict[str, Any]) -> bool:
    """Same decision, and the same arguments: numbers within 1% (or 1.0), the rest equal — the
    tolerance of the claims rubric's payout criterion."""
    if left.get("decision") != right.get("decision"):
        return False
    a, b = left.get("arguments") or {}, right.get("arguments") or {}
    if set(a) != set(b):
        return False
    for key, value in a.items():
        other = b[key]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, other))
        if numbers:
            if not math.isclose(value, other, rel_tol=0.01, abs_tol=1.0):
                return False
        elif value != other:
            return False
    return True


@dataclass(frozen=True)
class ShadowComparison:
    """A shadow version's decisions against what was executed on the same live cases."""

    shadow_decisions: int
    compared: int  # cases where something was executed
    agreed: int
    disagreements: list[dict[str, Any]]

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0


def shadow_comparison(version: PolicyVersion, *, limit: int = 50) -> ShadowComparison:
    """How often ``version``'s shadow decisions match the outcome executed for the case (the
    approved or corrected production decision, or the autonomous one). Cases still in review or
    rejected have nothing executed and are not compared; up to ``limit`` disagreements are listed."""
    shadows = list(
        Decision.objects.filter(policy_version=version, status=DecisionStatus.SHADOW).values_list(
            "pk", "case_id", "name", "arguments"
        )
    )
    executed = dict(
        Decision.objects.filter(
            case_id__in={case_id for _, case_id, _, _ in shadows}, status=DecisionStatus.EXECUTED
        ).values_list("case_id", "outcome")
    )
    compared = agreed = 0
    disagreements: list[dict[str, Any]] = []
    for pk, case_id, name, arguments in shadows:
        outcome = executed.get(case_id)
        if outcome is None:
            continue
        compared += 1
        shadow = {"decision": name, "arguments": arguments}
        if outcomes_agree(shadow, outcome):
            agreed += 1
        elif len(disagreements) < limit:
            disagreements.append({"decision": pk, "case": case_id, "shadow": shadow, "executed": outcome})
    return ShadowComparison(len(shadows), compared, agreed, disagreements)


def shadow_policy_versions(*, workflow: Workflow) -> list[PolicyVersion]:
    """The workflow's versions in shadow: they decide every live case alongside production."""
    return list(
        PolicyVersion.objects.filter(policy__workflow=workflow, stage=Stage.SHADOW)
        .select_related("policy")
        .order_by("id")
    )


# --------------------------------------------------------------------------- verdicts as training signal


@dataclass(frozen=True)
class NegativeLabel:
    """A rejected outcome: on ``case`` (fields only), ``outcome`` is wrong, for ``reason``."""

    case: CaseData
    outcome: Outcome
    reason: str
    review_id: int
    policy_version_id: int


def review_negative_labels(*, workflow: Workflow) -> list[NegativeLabel]:
    """Every rejection in ``workflow``, oldest first, as training signal.

    Training can use them as negative reward: when a rollout on ``case`` ends in ``outcome``
    (same decision and arguments, ``outcomes_agree``), add a penalty to the rubric's score; or as
    the rejected side of preference pairs. Corrections and approvals need none of this: they
    become labelled train cases (source review) that ``training_cases`` already reads."""
    reviews = (
        Review.objects.filter(decision__case__workflow=workflow, verdict=Review.Verdict.REJECT)
        .select_related("decision__case")
        .order_by("created_at", "id")
    )
    return [
        NegativeLabel(
            case=CaseData(
                id=str(r.decision.case_id),
                fields=r.decision.case.fields,
                difficulty=r.decision.case.difficulty,
            ),
            outcome=Outcome.from_dict(
                r.decision.outcome or {"decision": r.decision.name, "arguments": r.decision.arguments}
            ),
            reason=r.reason,
            review_id=r.pk,
            policy_version_id=r.decision.policy_version_id,
        )
        for r in reviews
    ]


# --------------------------------------------------------------------------- operations screens
# The dashboard and the paginated review queue. Each read is a fixed number of queries that touch
# a bounded number of rows (indexes, samples of the latest), never one query per row shown.

DASHBOARD_WORKFLOWS = 50  # workflows shown on the dashboard, by name
DASHBOARD_WINDOW_DAYS = 30  # agreement curves look back this far
DASHBOARD_EXECUTED_SAMPLE = 1000  # "executed without review" among each workflow's latest executed


def review_queue_page(
    *,
    actor: Actor,
    page: int | str | None = 1,
    per_page: int = 25,
    workflow: Workflow | None = None,
    now: datetime | None = None,
) -> tuple[Page, list[ReviewQueueItem]]:
    """One page of the review queue (same order as :func:`review_queue`) and its items.

    Three queries whatever the page: the count and the page's ids come from the queue's partial
    index alone, then only that page's rows are read with what they show (case, workflow, version,
    claimer, approvals this round)."""
    require(actor, "decision.view")
    queue = Decision.objects.filter(organization=actor.organization, status=DecisionStatus.PENDING_REVIEW)
    if workflow is not None:
        require_same_org(actor, workflow)
        queue = queue.filter(case__workflow=workflow)
    ordered = queue.order_by("-risk_level", "review_requested_at", "id").values_list("pk", flat=True)
    page_ = Paginator(ordered, per_page).get_page(page)
    ids = list(page_.object_list)
    # The queue shows neither the explanation nor the case's fields: not decoded for every row.
    rows = (
        pending_reviews(actor=actor, workflow=workflow)
        .filter(pk__in=ids)
        .defer("explanation", "routing", "case__fields", "case__expected", "case__workflow__description")
    )
    by_id = {decision.pk: decision for decision in rows}
    return page_, _review_queue_items([by_id[pk] for pk in ids if pk in by_id], now or timezone.now())


def review_claim_held(*, actor: Actor, now: datetime | None = None) -> int | None:
    """The id of the pending decision the actor holds an unexpired claim on, if any."""
    require(actor, "decision.view")
    return (
        Decision.objects.filter(
            organization=actor.organization,
            status=DecisionStatus.PENDING_REVIEW,
            claimed_by=actor.user,
            claim_expires_at__gt=now or timezone.now(),
        )
        .values_list("pk", flat=True)
        .first()
    )


@dataclass(frozen=True)
class WorkflowToday:
    """One workflow on the dashboard."""

    workflow: Workflow
    live_cases_today: int
    pending: int
    overdue: int
    oldest_pending_since: datetime | None
    service_level_hours: float
    executed: int  # the latest executed decisions, at most DASHBOARD_EXECUTED_SAMPLE
    executed_without_review: int
    production: PolicyVersion | None
    agreement: float  # over the production version's last ``agreement_window`` reviewed decisions
    agreement_reviewed: int
    agreement_window: int
    agreement_series: list[AgreementPoint]

    @property
    def share_without_review(self) -> float | None:
        return self.executed_without_review / self.executed if self.executed else None


@dataclass(frozen=True)
class DashboardOverview:
    now: datetime
    window_days: int
    executed_sample: int
    workflows: list[WorkflowToday]
    more_workflows: bool
    live_cases_today: int
    pending: int
    overdue: int
    oldest_pending_since: datetime | None
    executed: int
    executed_without_review: int
    active_jobs: int
    recent_jobs: list[Any]  # training.TrainingJob
    recent_decisions: list[Decision]

    @property
    def share_without_review(self) -> float | None:
        return self.executed_without_review / self.executed if self.executed else None

    @property
    def oldest_pending_age(self) -> timedelta | None:
        return self.now - self.oldest_pending_since if self.oldest_pending_since else None


def dashboard_overview(
    *, actor: Actor, now: datetime | None = None, window_days: int = DASHBOARD_WINDOW_DAYS
) -> DashboardOverview:
    """What the dashboard shows for the actor's organisation: today's live cases, what waits for
    review and for how long, the share executed without review, agreement with reviewers, the
    production version of each workflow and the latest training jobs."""
    from training.models import JobStatus, TrainingJob

    require(actor, "workflow.view")
    now = now or timezone.now()
    organization = actor.organization
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = now - timedelta(days=window_days)
    workflows = list(workflow_list(actor=actor).order_by("name", "id")[: DASHBOARD_WORKFLOWS + 1])
    more = len(workflows) > DASHBOARD_WORKFLOWS
    workflows = workflows[:DASHBOARD_WORKFLOWS]
    settings = {w.pk: review_settings_for(workflow=w) for w in workflows}

    live_today = dict(
        Case.objects.filter(organization=organization, split="live", created_at__gte=day_start)
        .values_list("workflow_id")
        .annotate(n=Count("*"))
        .order_by()
    )
    # Decisions are grouped by policy version, whose workflow is known here: no join with the cases.
    versions = list(
        PolicyVersion.objects.filter(policy__organization=organization)
        .select_related("policy")
        .defer("config", "metrics")
        .order_by("-promoted_at", "-id")
    )
    versions_of: dict[int, list[int]] = {}
    production: dict[int, PolicyVersion] = {}
    for version in versions:
        versions_of.setdefault(version.policy.workflow_id, []).append(version.pk)
        if version.stage in PRODUCTION_STAGES:
            production.setdefault(version.policy.workflow_id, version)
    workflow_of = {pk: workflow_id for workflow_id, pks in versions_of.items() for pk in pks}
    decisions = Decision.objects.filter(organization=organization)

    # Waiting for review: the queue's partial index; overdue depends on each workflow's service level.
    overdue_filter = Q(pk__in=[])
    for workflow_id, settings_ in settings.items():
        cutoff = now - timedelta(hours=settings_.service_level_hours)
        overdue_filter |= Q(policy_version_id__in=versions_of.get(workflow_id, [])) & (
            Q(review_requested_at__lt=cutoff) | Q(review_requested_at__isnull=True, created_at__lt=cutoff)
        )
    pending: dict[int | None, dict[str, Any]] = {}
    for row in (
        decisions.filter(status=DecisionStatus.PENDING_REVIEW)
        .values("policy_version_id")
        .annotate(
            n=Count("*"),
            overdue=Count("id", filter=overdue_filter),
            oldest=Min(Coalesce("review_requested_at", "created_at")),
        )
        .order_by()
    ):
        into = pending.setdefault(
            workflow_of.get(row["policy_version_id"]), {"n": 0, "overdue": 0, "oldest": None}
        )
        into["n"] += row["n"]
        into["overdue"] += row["overdue"]
        if row["oldest"] is not None and (into["oldest"] is None or row["oldest"] < into["oldest"]):
            into["oldest"] = row["oldest"]

    # Executed without review, among each workflow's latest executed decisions: a bounded sample read
    # newest first along the primary key, never a count over the whole history.
    executed: dict[int, dict[str, int]] = {}
    for workflow in workflows:
        ids = versions_of.get(workflow.pk)
        if not ids:
            continue
        latest = (
            decisions.filter(status=DecisionStatus.EXECUTED, policy_version_id__in=ids)
            .order_by("-id")
            .values("pk")[:DASHBOARD_EXECUTED_SAMPLE]
        )
        executed[workflow.pk] = Decision.objects.filter(pk__in=Subquery(latest)).aggregate(
            n=Count("*"), unreviewed=Count("id", filter=Q(review_outcome=""))
        )

    rows = []
    for workflow in workflows:
        settings_ = settings[workflow.pk]
        version = production.get(workflow.pk)
        rate, reviewed = (0.0, 0)
        series: list[AgreementPoint] = []
        if version is not None:
            rate, reviewed = policy_version_agreement(version, last_n=settings_.agreement_window)
            series = policy_version_agreement_series(version, since=since)
        waiting = pending.get(workflow.pk, {})
        done = executed.get(workflow.pk, {})
        rows.append(
            WorkflowToday(
                workflow=workflow,
                live_cases_today=live_today.get(workflow.pk, 0),
                pending=waiting.get("n", 0),
                overdue=waiting.get("overdue", 0),
                oldest_pending_since=waiting.get("oldest"),
                service_level_hours=settings_.service_level_hours,
                executed=done.get("n", 0),
                executed_without_review=done.get("unreviewed", 0),
                production=version,
                agreement=rate,
                agreement_reviewed=reviewed,
                agreement_window=settings_.agreement_window,
                agreement_series=series,
            )
        )
    oldest = [row["oldest"] for row in pending.values() if row["oldest"] is not None]
    jobs = (
        list(
            TrainingJob.objects.filter(organization=organization)
            .select_related("workflow", "policy", "result_version__policy")
            .defer("config", "error", "result_version__config", "result_version__metrics")
            .order_by("-created_at", "-id")[:5]
        )
        if actor.can("training.view")
        else []
    )
    recent = (
        list(
            decisions.filter(case__split="live")  # not the decisions of evaluation runs
            .select_related("case")
            .defer("explanation", "routing", "case__fields", "case__expected")
            .order_by("-id")[:10]
        )
        if actor.can("decision.view")
        else []
    )
    return DashboardOverview(
        now=now,
        window_days=window_days,
        executed_sample=DASHBOARD_EXECUTED_SAMPLE,
        workflows=rows,
        more_workflows=more,
        live_cases_today=sum(live_today.values()),
        pending=sum(row["n"] for row in pending.values()),
        overdue=sum(row["overdue"] for row in pending.values()),
        oldest_pending_since=min(oldest) if oldest else None,
        executed=sum(row["n"] for row in executed.values()),
        executed_without_review=sum(row["unreviewed"] for row in executed.values()),
        active_jobs=TrainingJob.objects.filter(
            organization=organization, status__in=(JobStatus.QUEUED, JobStatus.RUNNING)
        ).count()
        if actor.can("training.view")
        else 0,
        recent_jobs=jobs,
        recent_decisions=recent,
    )
