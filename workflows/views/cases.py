"""Cases (import, generate, list, detail), runs and decisions in detail.

The case list is meant for organisations with hundreds of thousands of cases: it filters and
searches in the database, never counts the result (pages say "page N" and whether a next one
exists), and fetches each listed case's latest decision in one query whatever the page size.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods

from caseloop.accounts.decorators import role_required
from workflows import selectors
from workflows.forms import CaseGenerateForm, CaseImportForm
from workflows.models import CaseSource, CaseStatus, Decision, Run, Split
from workflows.selectors import CaseFilters
from workflows.services.cases import case_generate, case_import
from workflows.views.authoring import error_dict, line_errors

PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
MAX_PAGE = 100_000
MAX_REPORTED_PROBLEMS = 500


def _page_number(value: str) -> int:
    return min(int(value), MAX_PAGE) if value.isdigit() and int(value) > 0 else 1


@role_required("case.view")
def case_list(request: HttpRequest) -> HttpResponse:
    actor = request.actor
    filters = CaseFilters.from_query(request.GET)
    size_text = request.GET.get("size", "")
    size = int(size_text) if size_text.isdigit() and int(size_text) in PAGE_SIZES else DEFAULT_PAGE_SIZE
    page, rows = selectors.case_list_page(
        actor=actor, filters=filters, number=_page_number(request.GET.get("page", "")), size=size
    )
    kept = {key: value for key, value in request.GET.items() if key != "page" and value}
    # A number may be a case id: point at that case whatever else the search finds.
    exact = None
    if filters.q.isdigit() and len(filters.q) < 19:
        exact = selectors.case_search(actor=actor, filters=CaseFilters()).filter(pk=int(filters.q)).first()
    return render(
        request,
        "workflows/case_list.html",
        {
            "page": page,
            "rows": rows,
            "exact": exact,
            "filters": filters,
            "size": size,
            "sizes": PAGE_SIZES,
            "query": urlencode(kept),
            "workflows": list(selectors.workflow_list(actor=actor).only("id", "name")),
            "splits": Split.choices,
            "sources": CaseSource.choices,
            "statuses": CaseStatus.choices,
            "filtered": any(kept.get(k) for k in ("workflow", "split", "source", "status", "decided", "q")),
        },
    )


def _import_workflows(request: HttpRequest) -> list[Any]:
    return list(selectors.workflow_list(actor=request.actor).only("id", "name", "pack"))


@role_required("case.import")
@require_http_methods(["GET", "POST"])
def case_import_view(request: HttpRequest) -> HttpResponse:
    workflows = _import_workflows(request)
    initial = {"workflow": request.GET.get("workflow")} if request.GET.get("workflow", "").isdigit() else None
    form = CaseImportForm(request.POST or None, request.FILES or None, workflows=workflows, initial=initial)
    problems: list[tuple[str, str, str]] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        workflow = next(w for w in workflows if w.pk == data["workflow"])
        try:
            cases = case_import(
                actor=request.actor,
                workflow=workflow,
                text=data["content"],
                fmt=data["fmt"],
                default_split=data["default_split"],
            )
        except ValidationError as exc:
            problems = line_errors(error_dict(exc))
        else:
            messages.success(
                request,
                f"Imported {len(cases):,} cases into {workflow.name} (ids {cases[0].pk} to {cases[-1].pk}).",
            )
            query = urlencode({"workflow": workflow.pk, "source": CaseSource.IMPORTED})
            return redirect(f"{reverse('case-list')}?{query}")
    return render(
        request,
        "workflows/case_import.html",
        {
            "form": form,
            "problems": problems[:MAX_REPORTED_PROBLEMS],
            "problem_count": len(problems),
            "more_problems": max(0, len(problems) - MAX_REPORTED_PROBLEMS),
        },
        status=400 if problems or form.errors else 200,
    )


@role_required("case.create")
@require_http_methods(["GET", "POST"])
def case_generate_view(request: HttpRequest) -> HttpResponse:
    workflows = [w for w in _import_workflows(request) if w.pack]
    initial = {"workflow": request.GET.get("workflow")} if request.GET.get("workflow", "").isdigit() else None
    form = CaseGenerateForm(request.POST or None, workflows=workflows, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        workflow = next(w for w in workflows if w.pk == data["workflow"])
        try:
            cases = case_generate(
                actor=request.actor,
                workflow=workflow,
                count=data["count"],
                seed=data["seed"],
                difficulty=data["difficulty"],
                splits=form.splits(),
            )
        except ValidationError as exc:
            for key, found in error_dict(exc).items():
                for message in found:
                    form.add_error(
                        "train" if key == "splits" else key if key in form.fields else None, message
                    )
        else:
            messages.success(
                request, f"Generated {len(cases):,} cases for {workflow.name} (seed {data['seed']})."
            )
            query = urlencode({"workflow": workflow.pk, "source": CaseSource.GENERATED})
            return redirect(f"{reverse('case-list')}?{query}")
    return render(
        request,
        "workflows/case_generate.html",
        {"form": form, "has_packs": bool(workflows)},
        status=400 if form.errors else 200,
    )


@role_required("case.view")
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = request.actor
    try:
        case = selectors.case_get(actor=actor, case_id=pk)
    except ObjectDoesNotExist:
        raise Http404("No such case in this organisation.") from None
    spec = case.workflow_version.spec
    described = {f["name"]: f for f in spec.get("case_fields", [])}
    fields = [
        {"name": name, "value": value, "spec": described.get(name, {})} for name, value in case.fields.items()
    ]
    return render(
        request,
        "workflows/case_detail.html",
        {
            "case": case,
            "fields": fields,
            "runs": selectors.case_runs(actor=actor, case=case),
        },
    )


def _run_page(request: HttpRequest, run: Run, *, focus: str) -> HttpResponse:
    detail = selectors.run_detail(actor=request.actor, run=run)
    decision = detail.decision
    explanation = (decision.explanation or {}) if decision is not None else {}
    features = explanation.get("features") or []
    scale = max((abs(float(f.get("attribution") or 0)) for f in features), default=0.0) or 1.0
    steps = []
    for step in detail.steps:
        probabilities = sorted(
            ((name, float(p)) for name, p in (step.probabilities or {}).items()), key=lambda pair: -pair[1]
        )
        steps.append(
            {
                "step": step,
                "event": detail.step_events.get(step.index),
                "probabilities": probabilities[:5],
                "more": max(0, len(probabilities) - 5),
            }
        )
    return render(
        request,
        "workflows/run_detail.html",
        {
            "run": run,
            "case": run.case,
            "decision": decision,
            "explanation": explanation,
            "features": features,
            "feature_scale": scale,
            "steps": steps,
            "breakdown": run.breakdown or [],
            "events": detail.events,
            "focus": focus,
        },
    )


@role_required("decision.view")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        run = selectors.run_get(actor=request.actor, run_id=pk)
    except Run.DoesNotExist:
        raise Http404("No such run in this organisation.") from None
    return _run_page(request, run, focus="run")


@role_required("decision.view")
def decision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        decision = selectors.decision_get(actor=request.actor, decision_id=pk)
        run = selectors.run_get(actor=request.actor, run_id=decision.run_id)
    except (Decision.DoesNotExist, Run.DoesNotExist):
        raise Http404("No such decision in this organisation.") from None
    return _run_page(request, run, focus="decision")


urlpatterns = [
    path("cases/", case_list, name="case-list"),
    path("cases/import/", case_import_view, name="case-import"),
    path("cases/generate/", case_generate_view, name="case-generate"),
    path("cases/<int:pk>/", case_detail, name="case-detail"),
    path("runs/<int:pk>/", run_detail, name="run-detail"),
    path("decisions/<int:pk>/", decision_detail, name="decision-detail"),
]
