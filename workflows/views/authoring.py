"""Workflow and rubric editors: versions, diffs, reference tables, try-it scoring, red-team panel.

Editing happens on a draft that travels with the page: the full spec (or rubric) as JSON in one
hidden input. Each action — add, change, remove or move an item, replace a section as JSON,
change the settings — posts the draft, the server applies it, asks the engine to validate the
whole draft and renders the editor again with every problem beside the item it concerns. With
htmx only the editor is swapped; without it the page reloads and works the same. Nothing is
written until "Save as version", which goes through the services (role, organisation, audit).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from caseloop.accounts.decorators import role_required
from caseloop.accounts.permissions import require
from workflows import selectors
from workflows.engine.diff import rubric_diff, spec_diff
from workflows.engine.errors import SpecError
from workflows.engine.rubric import Rubric as EngineRubric
from workflows.engine.spec import WorkflowSpec
from workflows.forms import (
    STARTER_RUBRIC,
    STARTER_SPEC,
    ArgumentFormSet,
    CriterionItemForm,
    DecisionItemForm,
    FieldItemForm,
    ItemForm,
    RubricCreateForm,
    RubricSettingsForm,
    SpecSettingsForm,
    TableUploadForm,
    ToolItemForm,
    WorkflowCreateForm,
    argument_items,
    criterion_summary,
    move,
    parse_json,
    problems_by_item,
)
from workflows.models import ReferenceTable, Rubric, RubricVersion, Workflow, WorkflowVersion
from workflows.packs import get_pack
from workflows.services.rubrics import rubric_create, rubric_preview, rubric_version_create
from workflows.services.workflows import (
    parse_table_csv,
    reference_table_set,
    workflow_create,
    workflow_version_create,
)

PREVIEW_CASES = 50


# --------------------------------------------------------------------------- helpers shared by the screens


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def redirect_to(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that htmx follows as a full page load (HX-Redirect), or a plain one."""
    if is_htmx(request):
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def error_dict(exc: ValidationError) -> dict[str, list[str]]:
    """A ValidationError as path → messages (``""`` for errors that name no field)."""
    if hasattr(exc, "error_dict"):
        return {("" if key == "__all__" else key): messages for key, messages in exc.message_dict.items()}
    return {"": list(exc.messages)}


def strip_prefix(errors: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {key.removeprefix(prefix): value for key, value in errors.items()}


def line_errors(errors: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """``{"line 4: fields.x": [...]}`` → sorted (line, field, message) rows for a per-line report."""
    rows: list[tuple[str, str, str]] = []
    for key, messages_ in errors.items():
        match = re.match(r"^line (\d+)(?::\s*(.*))?$", key)
        line, where = (match[1], match[2] or "") if match else ("", key)
        rows.extend((line, where, message) for message in messages_)
    return sorted(rows, key=lambda row: (int(row[0]) if row[0] else 0, row[1]))


def _workflow(request: HttpRequest, pk: int) -> Workflow:
    return get_object_or_404(selectors.workflow_list(actor=request.actor), pk=pk)


def _rubric(workflow: Workflow, pk: int) -> Rubric:
    return get_object_or_404(Rubric.objects.select_related("workflow"), workflow=workflow, pk=pk)


def _spec_of(workflow: Workflow) -> WorkflowSpec | None:
    version = workflow.latest_version
    return WorkflowSpec.from_dict(version.spec) if version else None


def _attach(form: Any, rest: str, message: str, resolve: Callable[[str], str | None] | None = None) -> None:
    """Put an engine problem on the input it is about (``minimum``, ``params.tolerance``), or on
    the form as a whole with its path. ``resolve`` maps a parameter to its input's name."""
    parts = [part for part in re.split(r"[.\[\]]", rest) if part and not part.isdigit()]
    is_param = bool(parts) and parts[0] == "params"
    if is_param:
        parts = parts[1:]
    key = parts[0] if parts else ""
    if key and resolve is not None and (is_param or key not in form.fields):
        key = resolve(key) or ""
    if key and key in form.fields:
        form.add_error(key, message)
    else:
        form.add_error(None, f"{rest}: {message}" if rest else message)


def _draft_from(request: HttpRequest) -> dict[str, Any] | None:
    try:
        draft = json.loads(request.POST.get("draft", ""))
    except json.JSONDecodeError:
        return None
    return draft if isinstance(draft, dict) else None


def _op(request: HttpRequest) -> tuple[str, str, int | None]:
    """``"update:tools:2"`` → ("update", "tools", 2)."""
    parts = request.POST.get("op", "").split(":")
    verb = parts[0]
    section = parts[1] if len(parts) > 1 else ""
    index = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
    return verb, section, index


# --------------------------------------------------------------------------- workflows


@role_required("workflow.view")
def workflow_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.workflow_summaries(actor=request.actor), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "workflows/workflow_list.html",
        {"page": page, "can_edit": request.actor.can("workflow.edit")},
    )


@role_required("workflow.edit")
@require_http_methods(["GET", "POST"])
def workflow_new(request: HttpRequest) -> HttpResponse:
    form = WorkflowCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        spec = data["spec"]
        if spec is None:
            if data["pack"]:
                spec = get_pack(data["pack"]).spec_dict
            else:
                spec = copy.deepcopy(STARTER_SPEC)
                spec["name"] = slugify(data["name"]).replace("-", "_").lstrip("_0123456789") or "workflow"
                spec["title"] = data["name"]
        try:
            workflow = workflow_create(
                actor=request.actor,
                name=data["name"],
                slug=data["slug"],
                description=data["description"],
                pack=data["pack"],
                spec=spec,
            )
        except ValidationError as exc:
            for key, messages_ in error_dict(exc).items():
                for message in messages_:
                    if key.startswith("spec."):
                        form.add_error("spec", f"{key.removeprefix('spec.')}: {message}")
                    elif key in form.fields:
                        form.add_error(key, message)
                    else:
                        form.add_error(None, message)
        else:
            messages.success(request, f"Workflow {workflow.name} created with version 1.")
            return redirect("workflow-detail", pk=workflow.pk)
    return render(request, "workflows/workflow_new.html", {"form": form})


@role_required("workflow.view")
def workflow_detail(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = _workflow(request, pk)
    actor = request.actor
    versions = list(selectors.workflow_versions(actor=actor, workflow=workflow)[:5])
    latest = versions[0] if versions else None
    tables = list(selectors.reference_tables(actor=actor, workflow=workflow))
    table_names = {table.name for table in tables}
    spec = latest.spec if latest else {}
    missing_tables = sorted(
        {tool["table"] for tool in spec.get("tools", []) if tool.get("kind") == "lookup"} - table_names
    )
    return render(
        request,
        "workflows/workflow_detail.html",
        {
            "workflow": workflow,
            "latest": latest,
            "versions": versions,
            "spec": spec,
            "tables": tables,
            "missing_tables": missing_tables,
            "rubrics": selectors.workflow_rubrics(actor=actor, workflow=workflow),
            "can_edit": actor.can("workflow.edit"),
            "can_edit_rubrics": actor.can("rubric.edit"),
            "tab": "overview",
        },
    )


# --------------------------------------------------------------------------- the spec editor


SECTION_FORMS: dict[str, type[ItemForm]] = {
    "case_fields": FieldItemForm,
    "tools": ToolItemForm,
    "decisions": DecisionItemForm,
}
SPEC_SECTIONS: dict[str, tuple[str, str]] = {
    "case_fields": ("Case fields", "field"),
    "tools": ("Tools", "tool"),
    "decisions": ("Decisions", "decision"),
}


def _field_summary(item: dict[str, Any]) -> str:
    parts = [str(item.get("type", "?")), "required" if item.get("required", True) else "optional"]
    low, high = item.get("minimum"), item.get("maximum")
    if low is not None or high is not None:
        parts.append(f"{'' if low is None else low}…{'' if high is None else high}")
    if item.get("choices"):
        parts.append("one of " + ", ".join(map(str, item["choices"])))
    if item.get("max_length"):
        parts.append(f"≤ {item['max_length']} characters")
    return " · ".join(parts)


def _tool_summary(item: dict[str, Any]) -> str:
    kind = item.get("kind")
    if kind == "lookup":
        text = f"looks up {item.get('table')} by {item.get('key_field')}"
        if item.get("returns"):
            text += " → " + ", ".join(item["returns"])
    elif kind == "expression":
        text = f"{item.get('result_name') or 'value'} = {item.get('expression')}"
    else:
        text = f"pack tool {item.get('pack_tool') or item.get('name')}"
    if item.get("requires"):
        text += " · after " + ", ".join(item["requires"])
    return text


def _decision_summary(item: dict[str, Any]) -> str:
    arguments = item.get("arguments") or []
    if not arguments:
        return "no arguments"
    return "; ".join(f"{a.get('name')}: {_field_summary(a)}" for a in arguments if isinstance(a, dict))


SUMMARIES = {"case_fields": _field_summary, "tools": _tool_summary, "decisions": _decision_summary}


@dataclass
class Section:
    """One list section of a draft as the editor shows it."""

    key: str
    label: str
    noun: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    form: Any = None
    arguments: Any = None  # decisions: the argument formset
    editing: int | None = None  # index of the item in the form, None when adding
    open_form: bool = False
    json_text: str = ""
    json_error: str = ""
    open_json: bool = False


def _spec_section_form(
    key: str, draft: dict[str, Any], data: Any = None, item: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """The item form (and, for decisions, the argument formset) of a section, bound to ``data`` or
    filled from ``item``."""
    initial = None
    if data is None and item is not None:
        initial = SECTION_FORMS[key].initial_from(item)
    if key == "tools":
        names = [str(t["name"]) for t in draft.get("tools") or [] if isinstance(t, dict) and t.get("name")]
        fields_ = [
            str(f["name"]) for f in draft.get("case_fields") or [] if isinstance(f, dict) and f.get("name")
        ]
        return ToolItemForm(data, initial=initial, prefix=key, tool_names=names, field_names=fields_), None
    if key == "decisions":
        arguments_initial = None
        if data is None and item is not None:
            arguments_initial = [FieldItemForm.initial_from(a) for a in item.get("arguments") or []]
        formset = ArgumentFormSet(data, initial=arguments_initial, prefix=f"{key}-args")
        return DecisionItemForm(data, initial=initial, prefix=key), formset
    return FieldItemForm(data, initial=initial, prefix=key), None


@dataclass
class EditorResult:
    draft: dict[str, Any]
    status: str = ""
    focus_section: str = ""
    bound: dict[str, tuple[Any, Any, int | None]] = field(
        default_factory=dict
    )  # section → (form, args, index)
    json_state: dict[str, tuple[str, str]] = field(default_factory=dict)  # section → (text, error)
    settings_form: Any = None
    save_errors: dict[str, list[str]] = field(default_factory=dict)


def _apply_spec_op(request: HttpRequest, draft: dict[str, Any]) -> EditorResult:
    verb, key, index = _op(request)
    result = EditorResult(draft=draft)
    items = draft.get(key) if key in SPEC_SECTIONS else None
    if key in SPEC_SECTIONS and not isinstance(items, list):
        items = draft[key] = []
    noun = SPEC_SECTIONS.get(key, ("", "item"))[1]
    if verb in ("add", "update") and items is not None:
        form, arguments = _spec_section_form(key, draft, request.POST)
        valid = form.is_valid() and (arguments is None or arguments.is_valid())
        if not valid:
            result.bound[key] = (form, arguments, index)
            result.status = f"The {noun} was not applied: see the problems in its form."
            return result
        item = form.to_item(argument_items(arguments)) if arguments is not None else form.to_item()
        if verb == "add":
            items.append(item)
            index = len(items) - 1
        elif index is not None and index < len(items):
            items[index] = item
        result.bound[key] = (form, arguments, index)  # kept only if the engine finds problems in it
        result.status = f"{noun.capitalize()} {item['name']!r} {'added' if verb == 'add' else 'updated'}."
        result.focus_section = key
    elif verb == "edit" and items is not None and index is not None and index < len(items):
        form, arguments = _spec_section_form(key, draft, item=items[index])
        result.bound[key] = (form, arguments, index)
        result.focus_section = key
    elif verb == "remove" and items is not None and index is not None and index < len(items):
        removed = items.pop(index)
        result.status = (
            f"{noun.capitalize()} {removed.get('name') if isinstance(removed, dict) else index!r} removed."
        )
    elif verb in ("up", "down") and items is not None and index is not None:
        draft[key] = move(items, index, -1 if verb == "up" else 1)
        result.status = "Order changed."
    elif verb == "json" and key in SPEC_SECTIONS:
        text = request.POST.get(f"json-{key}", "")
        try:
            draft[key] = parse_json(text, expect=list)
            result.status = f"{SPEC_SECTIONS[key][0]} replaced from JSON."
        except ValidationError as exc:
            result.json_state[key] = (text, exc.messages[0])
            result.status = "The JSON was not applied."
    elif verb == "settings":
        form = SpecSettingsForm(request.POST, prefix="settings")
        if form.is_valid():
            draft.update(form.to_settings())
            result.status = "Settings applied."
        else:
            result.settings_form = form
            result.status = "The settings were not applied."
    return result


def _spec_problems(draft: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """(problems by path, the normalised draft when valid — else the draft as it is)."""
    try:
        return {}, WorkflowSpec.from_dict(draft).to_dict()
    except SpecError as exc:
        problems: dict[str, list[str]] = {}
        for problem in exc.problems:
            problems.setdefault(problem.path, []).append(problem.message)
        return problems, draft


def _spec_editor_context(
    workflow: Workflow, latest: WorkflowVersion, base: int, result: EditorResult, note: str = ""
) -> dict[str, Any]:
    problems, draft = _spec_problems(result.draft)
    problems.update(result.save_errors)
    by_item, general = problems_by_item(problems)
    sections = []
    for key, (label, noun) in SPEC_SECTIONS.items():
        raw = draft.get(key)
        items = raw if isinstance(raw, list) else []
        section = Section(key=key, label=label, noun=noun)
        for index, item in enumerate(items):
            item = item if isinstance(item, dict) else {"name": repr(item)}
            section.rows.append(
                {
                    "index": index,
                    "item": item,
                    "summary": SUMMARIES[key](item),
                    "problems": by_item.get(f"{key}:{index}", []),
                }
            )
        bound = result.bound.get(key)
        if bound is not None:
            form, arguments, at = bound
            item_problems = by_item.get(f"{key}:{at}", []) if at is not None else []
            if form.is_bound and form.is_valid() and (arguments is None or arguments.is_valid()):
                if not item_problems:
                    bound = None  # applied cleanly: show a fresh "add" form
                else:
                    kept = (
                        [
                            f
                            for f in arguments.forms
                            if f.cleaned_data and not f.cleaned_data.get("delete") and not f.is_blank()
                        ]
                        if arguments is not None
                        else []
                    )
                    for rest, message in item_problems:
                        match = re.match(r"^arguments\[(\d+)\]\.?(.*)$", rest)
                        if match and int(match[1]) < len(kept):
                            _attach(kept[int(match[1])], match[2], message)
                        else:
                            _attach(form, rest, message)
        if bound is not None:
            section.form, section.arguments, section.editing = bound
            section.open_form = True
        else:
            section.form, section.arguments = _spec_section_form(key, draft)
        text, error = result.json_state.get(key, (json.dumps(items, indent=2), ""))
        section.json_text, section.json_error, section.open_json = text, error, bool(error)
        sections.append(section)
    settings_form = result.settings_form or SpecSettingsForm(
        initial={k: draft.get(k) for k in ("name", "title", "description", "max_steps")}, prefix="settings"
    )
    return {
        "workflow": workflow,
        "latest": latest,
        "base": base,
        "draft": draft,
        "draft_json": json.dumps(draft),
        "sections": sections,
        "settings_form": settings_form,
        "settings_problems": [
            (path, m) for path, m in general if path in ("name", "title", "description", "max_steps")
        ],
        "general_problems": [
            (path, m) for path, m in general if path not in ("name", "title", "description", "max_steps")
        ],
        "problem_count": sum(len(m) for m in problems.values()),
        "changes": spec_diff(latest.spec, draft),
        "status": result.status,
        "note": note,
        "tab": "edit",
    }


@role_required("workflow.edit")
@require_http_methods(["GET", "POST"])
def workflow_edit(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = _workflow(request, pk)
    latest = workflow.latest_version
    if latest is None:
        raise Http404("This workflow has no version to edit.")
    if request.method == "GET":
        source = latest
        if request.GET.get("from", "").isdigit():
            source = get_object_or_404(WorkflowVersion, workflow=workflow, number=int(request.GET["from"]))
        result = EditorResult(draft=copy.deepcopy(source.spec))
        if source != latest:
            result.status = (
                f"Editing a copy of version {source.number}; saving makes it version {latest.number + 1}."
            )
        context = _spec_editor_context(workflow, latest, latest.number, result)
        return render(request, "workflows/workflow_edit.html", context)

    draft = _draft_from(request)
    base = int(request.POST.get("base", "0") or 0)
    note = request.POST.get("note", "").strip()[:300]
    verb = _op(request)[0]
    if draft is None or verb == "reset":
        result = EditorResult(
            draft=copy.deepcopy(latest.spec), status=f"Draft reset to version {latest.number}."
        )
        base = latest.number
    elif verb == "save":
        result = EditorResult(draft=draft)
        changed = bool(spec_diff(latest.spec, _spec_problems(draft)[1]))
        refusal = _save_refusal(latest=latest.number, base=base, changed=changed, note=note)
        if refusal:
            result.save_errors = refusal
            base = latest.number
        else:
            try:
                version = workflow_version_create(
                    actor=request.actor, workflow=workflow, spec=draft, note=note
                )
            except ValidationError as exc:
                result.save_errors = strip_prefix(error_dict(exc), "spec.")
                result.status = "Not saved: fix the problems listed."
            else:
                messages.success(request, f"Saved version {version.number} of {workflow.name}.")
                return redirect_to(request, reverse("workflow-version", args=[workflow.pk, version.number]))
    else:
        result = _apply_spec_op(request, draft)
    context = _spec_editor_context(workflow, latest, base, result, note=note)
    template = "workflows/_spec_editor.html" if is_htmx(request) else "workflows/workflow_edit.html"
    return render(request, template, context)


def _save_refusal(*, latest: int, base: int, changed: bool, note: str) -> dict[str, list[str]] | None:
    """Why an editor's draft, opened on version ``base``, may not be saved after version ``latest``."""
    if base != latest:
        return {
            "": [
                f"Version {latest} was saved after you opened this editor. Look at its changes, "
                "then save again to replace them with your draft."
            ]
        }
    if not changed:
        return {"": [f"Nothing to save: the draft is the same as version {latest}."]}
    if not note:
        return {"note": ["Say in a few words what this version changes."]}
    return None


# --------------------------------------------------------------------------- versions


@role_required("workflow.view")
def workflow_versions(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = _workflow(request, pk)
    versions = selectors.workflow_versions(actor=request.actor, workflow=workflow)
    page = Paginator(versions, 20).get_page(request.GET.get("page"))
    numbers = [v.number for v in page]
    # Each listed version is compared with the one before it (one query for the page's neighbours).
    previous = {v.number: v.spec for v in workflow.versions.filter(number__in=[n - 1 for n in numbers])}
    rows = [
        {
            "version": v,
            "changes": spec_diff(previous[v.number - 1], v.spec) if v.number - 1 in previous else None,
        }
        for v in page
    ]
    compare = _compare(request, workflow.versions.all(), spec_diff)
    return render(
        request,
        "workflows/workflow_versions.html",
        {"workflow": workflow, "page": page, "rows": rows, "compare": compare, "tab": "versions"},
    )


def _compare(request: HttpRequest, versions: Any, differ: Any) -> dict[str, Any] | None:
    """The diff between the versions numbered ``?a=`` and ``?b=``, when both are given."""
    a, b = request.GET.get("a", ""), request.GET.get("b", "")
    if not (a.isdigit() and b.isdigit()):
        return None
    found = {v.number: v for v in versions.filter(number__in=[int(a), int(b)])}
    if int(a) not in found or int(b) not in found:
        return {"error": "No such version.", "a": a, "b": b}
    old, new = found[int(a)], found[int(b)]
    data = "definition" if isinstance(old, RubricVersion) else "spec"
    return {"a": old, "b": new, "changes": differ(getattr(old, data), getattr(new, data))}


@role_required("workflow.view")
def workflow_version(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    workflow = _workflow(request, pk)
    version = get_object_or_404(
        WorkflowVersion.objects.select_related("created_by"), workflow=workflow, number=number
    )
    previous = WorkflowVersion.objects.filter(workflow=workflow, number=number - 1).first()
    return render(
        request,
        "workflows/workflow_version.html",
        {
            "workflow": workflow,
            "version": version,
            "previous": previous,
            "changes": spec_diff(previous.spec, version.spec) if previous else None,
            "spec_json": json.dumps(version.spec, indent=2),
            "heading": f"Version {version.number}",
            "can_edit": request.actor.can("workflow.edit"),
            "tab": "versions",
        },
    )


# --------------------------------------------------------------------------- reference tables


@role_required("workflow.view")
@require_http_methods(["GET", "POST"])
def reference_tables(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = _workflow(request, pk)
    actor = request.actor
    form = TableUploadForm()
    errors: list[tuple[str, str, str]] = []
    if request.method == "POST":
        require(actor, "workflow.edit")
        if request.POST.get("op") == "pack":
            return _load_pack_tables(request, workflow)
        form = TableUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                columns, rows = parse_table_csv(form.cleaned_data["csv"])
                table = reference_table_set(
                    actor=actor, workflow=workflow, name=form.cleaned_data["name"], rows=rows, columns=columns
                )
            except ValidationError as exc:
                errors = line_errors(error_dict(exc))
                name_errors = [message for line, where, message in errors if where == "name"]
                for message in name_errors:
                    form.add_error("name", message)
            else:
                messages.success(
                    request, f"Table {table.name} saved: {len(rows):,} rows, columns {', '.join(columns)}."
                )
                return redirect("reference-tables", pk=workflow.pk)
    tables = list(selectors.reference_tables(actor=actor, workflow=workflow))
    version = workflow.latest_version
    lookups = [t for t in (version.spec.get("tools", []) if version else []) if t.get("kind") == "lookup"]
    for table in tables:
        table.used_by = [t["name"] for t in lookups if t.get("table") == table.name]  # type: ignore[attr-defined]
    names = {table.name for table in tables}
    return render(
        request,
        "workflows/reference_tables.html",
        {
            "workflow": workflow,
            "tables": tables,
            "missing": sorted({t["table"] for t in lookups if t.get("table") not in names}),
            "form": form,
            "errors": errors,
            "can_edit": actor.can("workflow.edit"),
            "tab": "tables",
        },
        status=400 if errors or form.errors else 200,
    )


def _load_pack_tables(request: HttpRequest, workflow: Workflow) -> HttpResponse:
    if not workflow.pack:
        messages.error(request, f"{workflow.name} has no pack with sample tables.")
        return redirect("reference-tables", pk=workflow.pk)
    seed = request.POST.get("seed", "1")
    seed_value = int(seed) if seed.isdigit() else 1
    with transaction.atomic():  # every table or none
        tables = get_pack(workflow.pack).generate_tables(seed_value)
        for name, rows in tables.items():
            reference_table_set(actor=request.actor, workflow=workflow, name=name, rows=rows)
    messages.success(request, f"Loaded the {workflow.pack} pack's sample tables: {', '.join(tables)}.")
    return redirect("reference-tables", pk=workflow.pk)


@role_required("workflow.view")
def reference_table(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    workflow = _workflow(request, pk)
    table = get_object_or_404(ReferenceTable, workflow=workflow, name=name)
    page = Paginator(table.rows, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "workflows/reference_table.html",
        {
            "workflow": workflow,
            "table": table,
            "page": page,
            "rows": [[row.get(column) for column in table.columns] for row in page],
            "tab": "tables",
        },
    )


# --------------------------------------------------------------------------- rubrics


def _rubric_starts(workflow: Workflow) -> list[tuple[str, str]]:
    starts = []
    if workflow.pack:
        starts.append(("pack", f"The {workflow.pack} pack's default rubric"))
    for rubric in workflow.rubrics.order_by("name"):
        starts.append((f"copy:{rubric.pk}", f"A copy of {rubric.name} (latest version)"))
    starts.append(("blank", "One criterion: the right outcome"))
    return starts


@role_required("rubric.edit")
@require_http_methods(["GET", "POST"])
def rubric_new(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = _workflow(request, pk)
    form = RubricCreateForm(request.POST or None, starts=_rubric_starts(workflow))
    if request.method == "POST" and form.is_valid():
        start = form.cleaned_data["start"]
        if start == "pack":
            definition = get_pack(workflow.pack).default_rubric_dict
        elif start.startswith("copy:"):
            source = _rubric(workflow, int(start.removeprefix("copy:")))
            latest = source.latest_version
            definition = copy.deepcopy(latest.definition) if latest else copy.deepcopy(STARTER_RUBRIC)
        else:
            definition = copy.deepcopy(STARTER_RUBRIC)
        try:
            rubric = rubric_create(
                actor=request.actor, workflow=workflow, name=form.cleaned_data["name"], definition=definition
            )
        except ValidationError as exc:
            for key, messages_ in error_dict(exc).items():
                for message in messages_:
                    form.add_error(
                        "name" if key == "name" else None,
                        f"{key}: {message}" if key not in ("", "name") else message,
                    )
        else:
            messages.success(request, f"Rubric {rubric.name} created. Shape its criteria, try it, then save.")
            return redirect("rubric-edit", pk=workflow.pk, rubric_id=rubric.pk)
    return render(
        request, "workflows/rubric_new.html", {"workflow": workflow, "form": form, "tab": "overview"}
    )


@role_required("workflow.view")
def rubric_detail(request: HttpRequest, pk: int, rubric_id: int) -> HttpResponse:
    workflow = _workflow(request, pk)
    rubric = _rubric(workflow, rubric_id)
    versions = selectors.rubric_versions(actor=request.actor, rubric=rubric)
    latest = versions.first()
    if latest is None:
        raise Http404("This rubric has no version.")
    shown = latest
    if request.GET.get("version", "").isdigit():
        shown = get_object_or_404(versions, number=int(request.GET["version"]))
    page = Paginator(versions, 20).get_page(request.GET.get("page"))
    # Each listed version is compared with the one before it (one query for the page's neighbours).
    previous = {
        v.number: v.definition for v in rubric.versions.filter(number__in=[v.number - 1 for v in page])
    }
    history = [
        {
            "version": v,
            "changes": rubric_diff(previous[v.number - 1], v.definition)
            if v.number - 1 in previous
            else None,
        }
        for v in page
    ]
    criteria = [
        {**criterion, "summary": criterion_summary(criterion)}
        for criterion in shown.definition.get("criteria", [])
    ]
    return render(
        request,
        "workflows/rubric_detail.html",
        {
            "workflow": workflow,
            "rubric": rubric,
            "shown": shown,
            "criteria": criteria,
            "history": history,
            "page": page,
            "history_query": f"version={shown.number}" if shown != latest else "",
            "latest": latest,
            "compare": _compare(request, rubric.versions.all(), rubric_diff),
            "definition_json": json.dumps(shown.definition),
            "can_edit": request.actor.can("rubric.edit"),
            "tab": "overview",
        },
    )


def _rubric_form(
    draft: dict[str, Any], spec: WorkflowSpec | None, data: Any = None, item: dict[str, Any] | None = None
) -> CriterionItemForm:
    arguments = sorted({a.name for d in spec.decisions for a in d.arguments}) if spec else []
    return CriterionItemForm(
        data,
        initial=CriterionItemForm.initial_from(item) if item is not None and data is None else None,
        prefix="criteria",
        tool_names=spec.tool_names if spec else (),
        decision_names=spec.decision_names if spec else (),
        argument_names=arguments,
    )


def _apply_rubric_op(request: HttpRequest, draft: dict[str, Any], spec: WorkflowSpec | None) -> EditorResult:
    verb, _, index = _op(request)
    result = EditorResult(draft=draft)
    criteria = draft.get("criteria")
    if not isinstance(criteria, list):
        criteria = draft["criteria"] = []
    if verb in ("add", "update"):
        form = _rubric_form(draft, spec, data=request.POST)
        if not form.is_valid():
            result.bound["criteria"] = (form, None, index)
            result.status = "The criterion was not applied: see the problems in its form."
            return result
        item = form.to_item()
        if verb == "add":
            criteria.append(item)
            index = len(criteria) - 1
        elif index is not None and index < len(criteria):
            criteria[index] = item
        result.bound["criteria"] = (form, None, index)
        result.status = f"Criterion {item['name']!r} {'added' if verb == 'add' else 'updated'}."
    elif verb == "edit" and index is not None and index < len(criteria):
        result.bound["criteria"] = (_rubric_form(draft, spec, item=criteria[index]), None, index)
    elif verb == "remove" and index is not None and index < len(criteria):
        removed = criteria.pop(index)
        result.status = f"Criterion {removed.get('name') if isinstance(removed, dict) else index!r} removed."
    elif verb in ("up", "down") and index is not None:
        draft["criteria"] = move(criteria, index, -1 if verb == "up" else 1)
        result.status = "Order changed."
    elif verb == "settings":
        settings_form = RubricSettingsForm(
            request.POST, prefix="settings", tool_names=spec.tool_names if spec else ()
        )
        if settings_form.is_valid():
            result.draft = settings_form.apply(draft)
            result.status = "Step cost and shaping applied."
        else:
            result.settings_form = settings_form
            result.status = "The step cost or shaping was not applied."
    elif verb == "json":
        text = request.POST.get("json-rubric", "")
        try:
            result.draft = parse_json(text, expect=dict)
            result.status = "Rubric replaced from JSON."
        except ValidationError as exc:
            result.json_state["rubric"] = (text, exc.messages[0])
            result.status = "The JSON was not applied."
    return result


def _rubric_problems(
    draft: dict[str, Any], spec: WorkflowSpec | None
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    try:
        return {}, EngineRubric.from_dict(draft, spec).to_dict()
    except SpecError as exc:
        problems: dict[str, list[str]] = {}
        for problem in exc.problems:
            problems.setdefault(problem.path, []).append(problem.message)
        return problems, draft


def _rubric_editor_context(
    workflow: Workflow,
    rubric: Rubric,
    latest: RubricVersion,
    base: int,
    result: EditorResult,
    spec: WorkflowSpec | None,
    note: str = "",
) -> dict[str, Any]:
    problems, draft = _rubric_problems(result.draft, spec)
    problems.update(result.save_errors)
    by_item, general = problems_by_item(problems)
    rows = []
    raw = draft.get("criteria")
    criteria = raw if isinstance(raw, list) else []
    for index, item in enumerate(criteria):
        item = item if isinstance(item, dict) else {"name": repr(item)}
        rows.append(
            {
                "index": index,
                "item": item,
                "summary": criterion_summary(item),
                "problems": by_item.get(f"criteria:{index}", []),
            }
        )
    form, editing, open_form = None, None, False
    bound = result.bound.get("criteria")
    if bound is not None:
        form, _, editing = bound
        item_problems = by_item.get(f"criteria:{editing}", []) if editing is not None else []
        if form.is_bound and form.is_valid() and not item_problems:
            form, editing = None, None
        else:
            for rest, message in item_problems:
                _attach(form, rest, message, form.field_for)
            open_form = True
    if form is None:
        form = _rubric_form(draft, spec)
    tool_names = spec.tool_names if spec else ()
    settings_form = result.settings_form or RubricSettingsForm(
        initial=RubricSettingsForm.initial_from(draft), prefix="settings", tool_names=tool_names
    )
    json_text, json_error = result.json_state.get("rubric", (json.dumps(draft, indent=2), ""))
    settings_paths = [(p, m) for p, m in general if p == "step_cost" or p.startswith("shaping")]
    return {
        "workflow": workflow,
        "rubric": rubric,
        "latest": latest,
        "base": base,
        "draft": draft,
        "draft_json": json.dumps(draft),
        "valid": not problems,
        "rows": rows,
        "form": form,
        "editing": editing,
        "open_form": open_form,
        "settings_form": settings_form,
        "settings_problems": settings_paths,
        "general_problems": [(p, m) for p, m in general if (p, m) not in settings_paths],
        "problem_count": sum(len(m) for m in problems.values()),
        "json_text": json_text,
        "json_error": json_error,
        "changes": rubric_diff(latest.definition, draft),
        "status": result.status,
        "note": note,
        "tab": "overview",
    }


@role_required("rubric.edit")
@require_http_methods(["GET", "POST"])
def rubric_edit(request: HttpRequest, pk: int, rubric_id: int) -> HttpResponse:
    workflow = _workflow(request, pk)
    rubric = _rubric(workflow, rubric_id)
    latest = rubric.latest_version
    if latest is None:
        raise Http404("This rubric has no version to edit.")
    spec = _spec_of(workflow)
    if request.method == "GET":
        source = latest
        if request.GET.get("from", "").isdigit():
            source = get_object_or_404(RubricVersion, rubric=rubric, number=int(request.GET["from"]))
        result = EditorResult(draft=copy.deepcopy(source.definition))
        if source != latest:
            result.status = (
                f"Editing a copy of version {source.number}; saving makes it version {latest.number + 1}."
            )
        context = _rubric_editor_context(workflow, rubric, latest, latest.number, result, spec)
        return render(request, "workflows/rubric_edit.html", context)

    draft = _draft_from(request)
    base = int(request.POST.get("base", "0") or 0)
    note = request.POST.get("note", "").strip()[:300]
    verb = _op(request)[0]
    if draft is None or verb == "reset":
        result = EditorResult(
            draft=copy.deepcopy(latest.definition), status=f"Draft reset to version {latest.number}."
        )
        base = latest.number
    elif verb == "save":
        result = EditorResult(draft=draft)
        changed = bool(rubric_diff(latest.definition, _rubric_problems(draft, spec)[1]))
        refusal = _save_refusal(latest=latest.number, base=base, changed=changed, note=note)
        if refusal:
            result.save_errors = refusal
            base = latest.number
        else:
            try:
                version = rubric_version_create(
                    actor=request.actor, rubric=rubric, definition=draft, note=note
                )
            except ValidationError as exc:
                result.save_errors = strip_prefix(error_dict(exc), "definition.")
                result.status = "Not saved: fix the problems listed."
            else:
                messages.success(request, f"Saved version {version.number} of rubric {rubric.name}.")
                url = reverse("rubric-detail", args=[workflow.pk, rubric.pk]) + f"?version={version.number}"
                return redirect_to(request, url)
    else:
        result = _apply_rubric_op(request, draft, spec)
    context = _rubric_editor_context(workflow, rubric, latest, base, result, spec, note=note)
    if is_htmx(request):
        response = render(request, "workflows/_rubric_editor.html", context)
        if context["valid"]:
            response["HX-Trigger-After-Swap"] = "rubricDraftChanged"
        return response
    return render(request, "workflows/rubric_edit.html", context)


@role_required("workflow.view")
@require_POST
def rubric_try(request: HttpRequest, pk: int) -> HttpResponse:
    """The try-it and red-team panel for a draft (``definition``, JSON): a fragment for htmx."""
    workflow = _workflow(request, pk)
    context: dict[str, Any] = {"workflow": workflow}
    try:
        definition = json.loads(request.POST.get("definition") or request.POST.get("draft") or "")
    except json.JSONDecodeError:
        definition = None
    if not isinstance(definition, dict):
        context["problems"] = [("definition", "The draft is not a JSON object.")]
        return render(request, "workflows/_rubric_try.html", context, status=400)
    try:
        preview = rubric_preview(
            actor=request.actor, workflow=workflow, definition=definition, limit=PREVIEW_CASES
        )
    except ValidationError as exc:
        context["problems"] = [
            (path.removeprefix("definition."), message)
            for path, messages_ in error_dict(exc).items()
            for message in messages_
        ]
        return render(request, "workflows/_rubric_try.html", context)
    context.update(_preview_rows(preview))
    return render(request, "workflows/_rubric_try.html", context)


BASELINE_LABELS = {
    "random": "Random",
    "always_approve": "Always approve",
    "always_deny": "Always deny",
    "always_escalate": "Always escalate",
    "skip_all_checks": "Skip all checks",
    "approve_after_checks": "Approve after checks",
    "expert_rules": "Expert rules",
    "reference_solver": "Reference solver",
}


def _preview_rows(preview: dict[str, Any]) -> dict[str, Any]:
    """The preview as table rows: policies (exploits marked) by mean, criteria means per policy."""
    redteam = preview["redteam"]
    exploits = set(redteam["scores"])
    reference = preview["policies"].get("reference_solver", {}).get("mean")
    policies = []
    for name, result in preview["policies"].items():
        policies.append(
            {
                "name": name,
                "label": BASELINE_LABELS.get(name, name.replace("_", " ").capitalize()),
                "exploit": name in exploits,
                "flagged": name in redteam["flagged"],
                "mean": result["mean"],
                "percent": round(result["mean"] * 100),
                "gated": result["gated"],
                "accuracy": result["accuracy"],
                "criteria": [result["criteria"][c["name"]] for c in preview["criteria"]],
            }
        )
    flagged = [p for p in policies if p["flagged"]]
    criteria_rows = [
        {**criterion, "cells": [p["criteria"][index] for p in policies]}
        for index, criterion in enumerate(preview["criteria"])
    ]
    return {
        "preview": preview,
        "policies": policies,
        "criteria_rows": criteria_rows,
        "flagged": flagged,
        "reference": reference,
        "close_to_reference": [
            p
            for p in policies
            if p["exploit"] and not p["flagged"] and reference and p["mean"] >= 0.8 * reference
        ],
    }


urlpatterns = [
    path("workflows/", workflow_list, name="workflow-list"),
    path("workflows/new/", workflow_new, name="workflow-create"),
    path("workflows/<int:pk>/", workflow_detail, name="workflow-detail"),
    path("workflows/<int:pk>/edit/", workflow_edit, name="workflow-edit"),
    path("workflows/<int:pk>/versions/", workflow_versions, name="workflow-versions"),
    path("workflows/<int:pk>/versions/<int:number>/", workflow_version, name="workflow-version"),
    path("workflows/<int:pk>/tables/", reference_tables, name="reference-tables"),
    path("workflows/<int:pk>/tables/<slug:name>/", reference_table, name="reference-table"),
    path("workflows/<int:pk>/rubrics/new/", rubric_new, name="rubric-create"),
    path("workflows/<int:pk>/rubrics/try/", rubric_try, name="rubric-try"),
    path("workflows/<int:pk>/rubrics/<int:rubric_id>/", rubric_detail, name="rubric-detail"),
    path("workflows/<int:pk>/rubrics/<int:rubric_id>/edit/", rubric_edit, name="rubric-edit"),
]
