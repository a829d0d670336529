"""Creating workflows, versioning their specs, and loading their reference tables."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils.text import slugify

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.chain import canonical_json
from caseloop.audit.services import audit_record
from workflows.engine.errors import SpecError
from workflows.engine.spec import WorkflowSpec
from workflows.models import ReferenceTable, Workflow, WorkflowVersion
from workflows.packs import get_pack
from workflows.services.errors import validation_error_from

MAX_TABLE_ROWS = 200_000


def _checked_spec(spec: Mapping[str, Any]) -> WorkflowSpec:
    try:
        return WorkflowSpec.from_dict(dict(spec))
    except SpecError as exc:
        raise validation_error_from(exc, prefix="spec.") from None


@transaction.atomic
def workflow_create(
    *, actor: Actor, name: str, spec: Mapping[str, Any], description: str = "", pack: str = "", slug: str = ""
) -> Workflow:
    """A new workflow with its first version."""
    require(actor, "workflow.edit")
    errors: dict[str, str] = {}
    name = name.strip()
    if not name:
        errors["name"] = "A workflow needs a name."
    slug = slugify(slug or name)
    if slug and Workflow.objects.filter(organization=actor.organization, slug=slug).exists():
        errors["slug"] = f"A workflow with the slug {slug!r} already exists."
    if pack:
        try:
            get_pack(pack)
        except KeyError:
            errors["pack"] = f"Unknown pack {pack!r}."
    if errors:
        raise ValidationError(errors)
    checked = _checked_spec(spec)
    workflow = Workflow.objects.create(
        organization=actor.organization, name=name, slug=slug, description=description, pack=pack
    )
    audit_record(actor=actor, verb="workflow.created", subject=workflow, payload={"name": name, "pack": pack})
    workflow_version_create(actor=actor, workflow=workflow, spec=checked.to_dict(), note="Initial version")
    return workflow


@transaction.atomic
def workflow_version_create(
    *, actor: Actor, workflow: Workflow, spec: Mapping[str, Any], note: str = ""
) -> WorkflowVersion:
    """Snapshot a new immutable version of the workflow's spec."""
    require(actor, "workflow.edit")
    require_same_org(actor, workflow)
    checked = _checked_spec(spec)
    # Lock the workflow row so two editors cannot both take the same version number.
    Workflow.objects.select_for_update().filter(pk=workflow.pk).first()
    number = (workflow.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=number, spec=checked.to_dict(), note=note, created_by=actor.user
    )
    audit_record(
        actor=actor,
        verb="workflow_version.created",
        subject=version,
        payload={"workflow": workflow.pk, "number": number, "note": note},
    )
    return version


def parse_table_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Columns and rows of a CSV; ValidationError naming the line on a ragged row."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValidationError({"file": "The CSV has no header line."})
    columns = [c.strip() for c in reader.fieldnames]
    if any(not c for c in columns) or len(set(columns)) != len(columns):
        raise ValidationError({"line 1": "Header columns must be non-empty and unique."})
    rows: list[dict[str, str]] = []
    errors: dict[str, str] = {}
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            errors[f"line {reader.line_num}"] = f"expected {len(columns)} values"
            continue
        rows.append({c.strip(): v for c, v in row.items()})
    if errors:
        raise ValidationError(errors)
    return columns, rows


@transaction.atomic
def reference_table_set(
    *,
    actor: Actor,
    workflow: Workflow,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] = (),
) -> ReferenceTable:
    """Create or replace one of the workflow's reference tables."""
    require(actor, "workflow.edit")
    require_same_org(actor, workflow)
    name = slugify(name).replace("-", "_")
    if not name:
        raise ValidationError({"name": "A reference table needs a name."})
    if len(rows) > MAX_TABLE_ROWS:
        raise ValidationError({"rows": f"At most {MAX_TABLE_ROWS:,} rows; got {len(rows):,}."})
    cols = list(columns) or (list(rows[0].keys()) if rows else [])
    errors = {
        f"rows[{i}]": f"columns {sorted(set(row) ^ set(cols))} differ from the header"
        for i, row in enumerate(rows)
        if set(row) != set(cols)
    }
    if errors:
        raise ValidationError(dict(list(errors.items())[:20]))
    plain_rows = [dict(row) for row in rows]
    digest = hashlib.sha256(canonical_json(plain_rows).encode()).hexdigest()
    table, created = ReferenceTable.objects.update_or_create(
        workflow=workflow, name=name, defaults={"columns": cols, "rows": plain_rows, "content_hash": digest}
    )
    audit_record(
        actor=actor,
        verb="reference_table.created" if created else "reference_table.replaced",
        subject=table,
        payload={"workflow": workflow.pk, "name": name, "rows": len(plain_rows), "content_hash": digest},
    )
    return table
