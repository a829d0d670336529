"""Audit pages: filtered event list, search in explanations, chain verification, export.

For auditors and admins (``audit.view``). The list pages by keyset (``?before=`` / ``?after=`` a
sequence number), so it answers as fast on the millionth event as on the first; exports stream
the organisation's whole chain with its head, so a third party can re-verify them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from caseloop.accounts.decorators import role_required
from caseloop.audit.export import EVENT_FIELDS
from caseloop.audit.selectors import (
    AuditFilters,
    audit_chain_length,
    audit_event_get,
    audit_event_page,
    audit_export_lines,
    audit_recent_values,
    audit_verify,
)

PER_PAGE_CHOICES = (10, 25, 50, 100, 200)
# Where an event's subject is shown, when that page is installed: subject type -> URL name.
SUBJECT_PAGES = {
    "workflows.case": "case-detail",
    "workflows.decision": "decision-detail",
    "workflows.run": "run-detail",
    "workflows.workflow": "workflow-detail",
    "training.trainingjob": "training-job-detail",
    "training.policyversion": "policy-version-detail",
}


def _date(value: str, name: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = f"{name}: expected a date as YYYY-MM-DD, got {value!r}."
        return None


def _int(value: str | None, name: str, errors: dict[str, str]) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        errors[name] = f"{name}: expected a whole number, got {value!r}."
        return None


def _subject_url(subject_type: str, subject_id: str) -> str | None:
    name = SUBJECT_PAGES.get(subject_type)
    if name is None or not subject_id.isdigit():
        return None
    try:
        return reverse(name, args=[int(subject_id)])
    except NoReverseMatch:
        return None


@role_required("audit.view")
@require_GET
def event_list(request):
    get = request.GET
    errors: dict[str, str] = {}
    filters = AuditFilters(
        actor=get.get("actor", "").strip(),
        verb=get.get("verb", "").strip(),
        subject_type=get.get("subject_type", "").strip(),
        subject_id=get.get("subject_id", "").strip(),
        since=_date(get.get("since", "").strip(), "since", errors),
        until=_date(get.get("until", "").strip(), "until", errors),
        search=get.get("q", "").strip()[:200],
    )
    before = _int(get.get("before"), "before", errors)
    after = _int(get.get("after"), "after", errors)
    per_page = _int(get.get("per_page"), "per_page", errors) or 50
    if per_page not in PER_PAGE_CHOICES:
        per_page = 50
    page = audit_event_page(
        actor=request.actor, filters=filters, before=before, after=after, size=per_page, with_payload=False
    )
    # Rows are plain strings made here: a trail page can hold 200 events, and template filters
    # (dates, truncation, url-encoding) per cell cost more than the queries.
    rows = []
    for event in page.events:
        text = event.summary or ""
        rows.append(
            {
                "event": event,
                "when": event.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "iso": event.created_at.isoformat(),
                "explanation": text if len(text) <= 240 else text[:239] + "…",
                "subject_url": _subject_url(event.subject_type, event.subject_id),
                "subject_filter": urlencode(
                    {"subject_type": event.subject_type, "subject_id": event.subject_id}
                ),
                "verb_filter": urlencode({"verb": event.verb}),
            }
        )
    kept = {
        key: value
        for key, value in {
            "actor": filters.actor,
            "verb": filters.verb,
            "subject_type": filters.subject_type,
            "subject_id": filters.subject_id,
            "since": get.get("since", "").strip() if "since" not in errors else "",
            "until": get.get("until", "").strip() if "until" not in errors else "",
            "q": filters.search,
            "per_page": per_page if per_page != 50 else "",
        }.items()
        if value
    }
    query = urlencode(kept)
    return render(
        request,
        "audit/event_list.html",
        {
            "rows": rows,
            "events_base": reverse("audit-event-detail", args=[0])[: -len("0/")],
            "chain_length": audit_chain_length(actor=request.actor),
            "page": page,
            "filters": filters,
            "form": kept,
            "query": query,
            "errors": errors,
            "paged": before is not None or after is not None,
            "per_page": per_page,
            "per_page_choices": PER_PAGE_CHOICES,
            "verbs": audit_recent_values(actor=request.actor, field="verb"),
            "actors": audit_recent_values(actor=request.actor, field="actor_label"),
            "subject_types": audit_recent_values(actor=request.actor, field="subject_type"),
        },
        status=400 if errors else 200,
    )


@role_required("audit.view")
@require_GET
def event_detail(request, sequence: int):
    """One event of the organisation's chain: every field, the payload and both hashes. htmx asks for
    the ``fragment`` when a row of the list is opened."""
    event = audit_event_get(actor=request.actor, sequence=sequence)
    if event is None:
        raise Http404("No event with that sequence number in this organisation's trail.")
    context = {
        "event": event,
        "payload": json.dumps(event.payload, indent=2, sort_keys=True, ensure_ascii=False, default=str),
        "subject_url": _subject_url(event.subject_type, event.subject_id),
    }
    if request.GET.get("fragment") == "1":
        return render(request, "audit/_event_fields.html", context)
    return render(request, "audit/event_detail.html", context)


@role_required("audit.view")
@require_POST
def verify(request):
    """Re-compute the organisation's whole chain now and show the result (the first broken link)."""
    started = timezone.now()
    result = audit_verify(organization=request.actor.organization)
    context = {
        "result": result,
        "seconds": (timezone.now() - started).total_seconds(),
        "verified_at": timezone.now(),
    }
    if request.headers.get("HX-Request") == "true":
        return render(request, "audit/_verify_result.html", context)
    return render(request, "audit/verify.html", context)


def _export_name(request, extension: str) -> str:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return f"audit-{request.actor.organization.slug}-{stamp}.{extension}"


def _download(lines: Iterator[str], filename: str, content_type: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@role_required("audit.view")
@require_GET
def export_jsonl(request):
    """The organisation's chain as JSONL, ending with its chain head (see caseloop.audit.export)."""
    lines = audit_export_lines(organization=request.actor.organization)
    return _download(
        (line + "\n" for line in lines), _export_name(request, "jsonl"), "application/x-ndjson; charset=utf-8"
    )


CSV_COLUMNS = (*EVENT_FIELDS, "exported_at")


def _csv_rows(lines: Iterator[str]) -> Iterator[str]:
    """The export as CSV: one row per event (payload as JSON text), then one row per chain head with
    verb ``chain_head``, its sequence, its hash and when it was exported."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for line in lines:
        record = json.loads(line)
        head = record.get("chain_head")
        if head is not None:
            row = {
                "organization_id": head["organization_id"],
                "sequence": head["sequence"],
                "verb": "chain_head",
                "subject_type": "organization",
                "subject_id": head["organization"],
                "hash": head["hash"],
                "exported_at": head["exported_at"],
            }
        else:
            row = dict(record, payload=json.dumps(record["payload"], sort_keys=True, ensure_ascii=False))
        writer.writerow([row.get(column, "") for column in CSV_COLUMNS])
        yield flush()


@role_required("audit.view")
@require_GET
def export_csv(request):
    lines = audit_export_lines(organization=request.actor.organization)
    return _download(_csv_rows(lines), _export_name(request, "csv"), "text/csv; charset=utf-8")


urlpatterns = [
    path("", event_list, name="audit-event-list"),
    path("events/<int:sequence>/", event_detail, name="audit-event-detail"),
    path("verify/", verify, name="audit-verify"),
    path("export.jsonl", export_jsonl, name="audit-export-jsonl"),
    path("export.csv", export_csv, name="audit-export-csv"),
]
