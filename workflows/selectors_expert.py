"""Reads behind the expert screens: workflow and rubric histories, reference tables, the case list
with its filters and search, and everything one run or decision shows. Always scoped to the
actor's organisation; kept beside ``selectors.py`` (the dashboard's and reviewers' reads).

The case list is built to stay fast on hundreds of thousands of cases: it never counts the
filtered set (a page knows only whether there is a next one), it orders by an indexed key, and
the latest decision of each listed case comes in one extra query whatever the page size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.expressions import RawSQL

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.models import AuditEvent
from workflows.models import (
    Case,
    CaseSource,
    CaseStatus,
    Decision,
    ReferenceTable,
    Rubric,
    RubricVersion,
    Run,
    Split,
    Step,
    Workflow,
    WorkflowVersion,
)


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
    require(actor, "workflow.view")
    return (
        Workflow.objects.filter(organization=actor.organization)
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
    require(actor, "case.view")
    cases = Case.objects.filter(organization=actor.organization)
    if filters.workflow is not None:
        cases = cases.filter(workflow_id=filters.workflow)
    if filters.split:
        cases = cases.filter(split=filters.split)
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
    return cases.filter(_search_match(filters.q)).order_by(
        F("created_at").desc(nulls_last=True), F("id").desc(nulls_last=True)
    )


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
    if not filters.q:
        return _page(
            list(_narrowed(actor=actor, filters=filters).select_related("workflow")[wanted]), number, size
        )
    if wanted.stop <= RECENT_WINDOW:
        recent = list(_narrowed(actor=actor, filters=filters).values_list("pk", flat=True)[:RECENT_WINDOW])
        fetched = list(
            Case.objects.filter(pk__in=recent)
            .filter(_search_match(filters.q))
            .select_related("workflow")
            .order_by(F("created_at").desc(nulls_last=True), F("id").desc(nulls_last=True))[wanted]
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
    require(actor, "case.view")
    return Case.objects.select_related("workflow", "workflow_version").get(
        organization=actor.organization, pk=case_id
    )


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
    require(actor, "decision.view")
    return Run.objects.select_related(
        "case__workflow",
        "workflow_version",
        "rubric_version__rubric",
        "policy_version__policy",
        "evaluation",
    ).get(organization=actor.organization, pk=run_id)


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
