"""Reads for workflows, rubrics, cases, runs, decisions and reviews, always scoped to the actor's
organisation: the dashboard's and reviewers' reads first, then the expert screens' (workflow and
rubric histories, reference tables, the case list with its filters and search, one run or decision).

The case list is built to stay fast on hundreds of thousands of cases: it never counts the
filtered set (a page knows only whether there is a next one), it orders by an indexed key, and
the latest decision of each listed case comes in one extra query whatever the page size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.models import AuditEvent
from training.models import PRODUCTION_STAGES, PolicyVersion, Stage
from workflows.engine.environment import CaseData, Outcome
from workflows.models import (
    Case,
    CaseSource,
    CaseStatus,
    Decision,
    DecisionStatus,
    ReferenceTable,
    Review,
    ReviewOutcome,
    Rubric,
    RubricVersion,
    Run,
    Split,
    Step,
    Workflow,
    WorkflowVersion,
)
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


# =========================================================================== expert screens


class JSONArrayLength(Func):
    """Length of a JSON array column, computed in the database (the rows themselves stay there)."""

    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):  # type: ignore[no-untyped-def]
        return self.as_sql(compiler, connection, function="jsonb_array_length", **extra)

    def as_sqlite(self, compiler, connection, **extra):  # type: ignore[no-untyped-def]
        return self.as_sql(compiler, connection, function="json_array_length", **extra)


# --------------------------------------------------------------------------- workflows and rubrics


def workflow_summaries(*, actor: Actor) -> QuerySet[Workflow]:
    """The organisation's workflows with their latest version number and number of rubrics."""
    return (
        workflow_list(actor=actor)
        .annotate(latest_number=Max("versions__number"), n_rubrics=Count("rubrics", distinct=True))
        .order_by("name", "id")
    )


def workflow_versions(*, actor: Actor, workflow: Workflow) -> QuerySet[WorkflowVersion]:
    require(actor, "workflow.view")
    require_same_org(actor, workflow)
    return workflow.versions.select_related("created_by").order_by("-number")


def reference_tables(*, actor: Actor, workflow: Workflow) -> QuerySet[ReferenceTable]:
    """The workflow's tables without their rows, each with ``n_rows``."""
    require(actor, "workflow.view")
    require_same_org(actor, workflow)
    return workflow.tables.defer("rows").annotate(n_rows=JSONArrayLength("rows")).order_by("name")


def workflow_rubrics(*, actor: Actor, workflow: Workflow) -> list[Rubric]:
    """The workflow's rubrics, each with ``latest`` (its newest version) and ``n_versions``."""
    require(actor, "workflow.view")
    require_same_org(actor, workflow)
    rubrics: list[Rubric] = list(
        workflow.rubrics.annotate(n_versions=Count("versions")).order_by("name", "id")
    )
    latest: dict[int, RubricVersion] = {}
    for version in RubricVersion.objects.filter(rubric__in=rubrics).order_by("rubric_id", "-number"):
        latest.setdefault(version.rubric_id, version)
    for rubric in rubrics:
        rubric.latest = latest.get(rubric.pk)  # type: ignore[attr-defined]
    return rubrics


def rubric_versions(*, actor: Actor, rubric: Rubric) -> QuerySet[RubricVersion]:
    require(actor, "workflow.view")
    require_same_org(actor, rubric.workflow)
    return rubric.versions.select_related("created_by").annotate(n_runs=Count("runs")).order_by("-number")


# --------------------------------------------------------------------------- the case list


DECIDED_YES, DECIDED_NO = "yes", "no"


@dataclass(frozen=True)
class CaseFilters:
    """What the case list is narrowed to; empty values mean "any"."""

    workflow: int | None = None
    split: str = ""
    source: str = ""
    status: str = ""
    decided: str = ""  # yes: has a decision; no: has none
    q: str = ""

    @classmethod
    def from_query(cls, query: Any) -> CaseFilters:
        """From request.GET: unknown values are dropped rather than refused (a stale bookmark still works)."""
        workflow = query.get("workflow", "")
        return cls(
            workflow=int(workflow) if workflow.isdigit() else None,
            split=_known(query.get("split", ""), Split.values),
            source=_known(query.get("source", ""), CaseSource.values),
            status=_known(query.get("status", ""), CaseStatus.values),
            decided=_known(query.get("decided", ""), (DECIDED_YES, DECIDED_NO)),
            q=query.get("q", "").strip()[:200],
        )


def _known(value: str, allowed: Sequence[str]) -> str:
    return value if value in allowed else ""


# Text search over field values on PostgreSQL: the words of the query, each also as a prefix
# ("smi" finds "Smith"), against ``search_vector``, the stored text-search vector of the values
# that migration 0005 adds (a generated column with a GIN index, not a model field).
_FIELD_WORDS_SQL = (
    "workflows_case.search_vector"
    " @@ to_tsquery('simple', regexp_replace(plainto_tsquery('simple', %s)::text, '''( |$)', ''':*\\1', 'g'))"
)
# SQLite (the embedded default, small data): a substring of any scalar value, ignoring case.
_FIELD_LIKE_SQL = (
    "EXISTS (SELECT 1 FROM json_each(workflows_case.fields) AS f"
    " WHERE f.type IN ('text', 'integer', 'real') AND f.value LIKE %s ESCAPE '\\')"
)


def _field_text_matches(q: str) -> RawSQL:
    """Some case field's value holds the words of ``q``."""
    if connection.vendor == "postgresql":
        sql, params = _FIELD_WORDS_SQL, [q]
    else:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        sql, params = _FIELD_LIKE_SQL, [f"%{escaped}%"]
    # Constant SQL; the searched text goes in as a parameter.
    return RawSQL(sql, params, output_field=BooleanField())  # noqa: S611


def _narrowed(*, actor: Actor, filters: CaseFilters) -> QuerySet[Case]:
    """The organisation's cases narrowed by every filter but the search, newest first."""
    cases = case_list(actor=actor, split=filters.split)
    if filters.workflow is not None:
        cases = cases.filter(workflow_id=filters.workflow)
    if filters.source:
        cases = cases.filter(source=filters.source)
    if filters.status:
        cases = cases.filter(status=filters.status)
    if filters.decided:
        has_decision = Exists(Decision.objects.filter(case_id=OuterRef("pk")))
        cases = cases.filter(has_decision if filters.decided == DECIDED_YES else ~has_decision)
    return cases.order_by("-created_at", "-id")


def _search_match(q: str) -> Q:
    match = Q(external_id__istartswith=q) | Q(_field_text_matches(q))
    if q.isdigit() and len(q) < 19:
        match |= Q(pk=int(q))
    return match


# Newest first, written so that PostgreSQL sorts the matches instead of walking the newest-first
# index (see case_search).
_MATCHES_NEWEST_FIRST = (F("created_at").desc(nulls_last=True), F("id").desc(nulls_last=True))


def case_search(*, actor: Actor, filters: CaseFilters) -> QuerySet[Case]:
    """The organisation's cases narrowed by ``filters``, newest first.

    ``q`` matches a case id exactly, the start of an external reference (ignoring case), or the
    words of the field values (each word of ``q`` also as a prefix: "smi" finds "Smith")."""
    cases = _narrowed(actor=actor, filters=filters).select_related("workflow")
    if not filters.q:
        return cases
    # NULLS LAST (created_at is never null, so the order is the same) keeps PostgreSQL from
    # walking the newest-first index and testing every case against the search, which is a scan
    # of the whole organisation for a rare word: the search indexes find the matches, and only
    # those are sorted. ``case_list_page`` tries the newest cases first for common words.
    return cases.filter(_search_match(filters.q)).order_by(*_MATCHES_NEWEST_FIRST)


# How many of the newest cases a search looks through first: a common word fills its page there
# (quickly, from the newest-first index); a rarer one falls through to the search indexes.
RECENT_WINDOW = 2_000


def case_list_page(
    *, actor: Actor, filters: CaseFilters, number: int, size: int
) -> tuple[CasePage, list[CaseRow]]:
    """Page ``number`` of the case list (see :func:`case_search`), each row with its latest
    decision. Never counts the matches; the number of queries does not depend on ``size``."""
    number = max(1, number)
    start = (number - 1) * size
    wanted = slice(start, start + size + 1)  # one more than the page: is there a next one?
    if filters.q and wanted.stop <= RECENT_WINDOW:
        recent = list(_narrowed(actor=actor, filters=filters).values_list("pk", flat=True)[:RECENT_WINDOW])
        fetched = list(
            Case.objects.filter(pk__in=recent)
            .filter(_search_match(filters.q))
            .select_related("workflow")
            .order_by(*_MATCHES_NEWEST_FIRST)[wanted]
        )
        # Complete when it filled the page, or when the window held every case there is.
        if len(fetched) > size or len(recent) < RECENT_WINDOW:
            return _page(fetched, number, size)
    return _page(list(case_search(actor=actor, filters=filters)[wanted]), number, size)


@dataclass
class CasePage:
    """One page of a list that is never counted: it knows its number and whether more follow.
    Shaped like Django's Page for ``templates/includes/pagination.html``."""

    items: list[Case]
    number: int
    has_next: bool
    paginator: None = None

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    def previous_page_number(self) -> int:
        return self.number - 1

    def next_page_number(self) -> int:
        return self.number + 1

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)


@dataclass
class CaseRow:
    case: Case
    decision: Decision | None = None
    decisions: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _page(fetched: list[Case], number: int, size: int) -> tuple[CasePage, list[CaseRow]]:
    """The page and its rows, each with its case's latest decision (one query for all of them)."""
    page = CasePage(items=fetched[:size], number=number, has_next=len(fetched) > size)
    latest: dict[int, Decision] = {}
    counts: dict[int, int] = {}
    if page.items:
        for decision in Decision.objects.filter(case_id__in=[c.pk for c in page.items]).order_by(
            "case_id", "-created_at", "-id"
        ):
            latest.setdefault(decision.case_id, decision)
            counts[decision.case_id] = counts.get(decision.case_id, 0) + 1
    rows = [CaseRow(case, latest.get(case.pk), counts.get(case.pk, 0)) for case in page.items]
    return page, rows


# --------------------------------------------------------------------------- one case, run or decision


def case_get(*, actor: Actor, case_id: int) -> Case:
    return case_list(actor=actor).select_related("workflow", "workflow_version").get(pk=case_id)


def case_runs(*, actor: Actor, case: Case) -> list[Run]:
    """The case's runs, newest first, each with its decision (or None) and policy version."""
    require(actor, "decision.view")
    require_same_org(actor, case)
    runs = list(
        Run.objects.filter(case=case)
        .select_related("policy_version__policy", "rubric_version__rubric", "evaluation")
        .order_by("-started_at", "-id")
    )
    decisions = {d.run_id: d for d in Decision.objects.filter(case=case)}
    for run in runs:
        run.decision_row = decisions.get(run.pk)  # type: ignore[attr-defined]
    return runs


def run_get(*, actor: Actor, run_id: int) -> Run:
    return (
        run_list(actor=actor)
        .select_related(
            "case__workflow",
            "workflow_version",
            "rubric_version__rubric",
            "policy_version__policy",
            "evaluation",
        )
        .get(pk=run_id)
    )


def decision_get(*, actor: Actor, decision_id: int) -> Decision:
    require(actor, "decision.view")
    return Decision.objects.select_related("run", "claimed_by").get(
        organization=actor.organization, pk=decision_id
    )


@dataclass
class RunDetail:
    run: Run
    steps: list[Step]
    decision: Decision | None
    step_events: dict[int, AuditEvent]  # step index → the audit event that recorded it
    events: list[AuditEvent]  # every event about the run and its decision, in chain order


def run_detail(*, actor: Actor, run: Run) -> RunDetail:
    """A run with its steps, its decision and the audit events that recorded them (each step's
    event is the run's ``agent.*`` event whose payload names that step)."""
    require(actor, "decision.view")
    require_same_org(actor, run)
    steps = list(run.steps.order_by("index"))
    decision = Decision.objects.filter(run=run).select_related("claimed_by").first()
    subjects = Q(subject_type="workflows.run", subject_id=str(run.pk))
    if decision is not None:
        subjects |= Q(subject_type="workflows.decision", subject_id=str(decision.pk))
    events = list(
        AuditEvent.objects.filter(subjects, organization_id=run.organization_id).order_by("sequence")
    )
    step_events: dict[int, AuditEvent] = {}
    for event in events:
        if event.subject_type == "workflows.run" and event.verb.startswith("agent."):
            index = event.payload.get("step")
            if isinstance(index, int):
                step_events.setdefault(index, event)
    return RunDetail(run=run, steps=steps, decision=decision, step_events=step_events, events=events)
