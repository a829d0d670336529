"""Cases: create one, import many (CSV or JSONL, all or nothing), generate synthetic ones from a pack."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.services import audit_record
from caseloop.webhooks import payloads as webhook_payloads  # webhooks: case.created
from caseloop.webhooks.services import webhooks_emit, webhooks_emit_many  # webhooks: case.created
from workflows.engine.errors import SpecError
from workflows.engine.spec import WorkflowSpec
from workflows.models import Case, CaseSource, CaseStatus, Split, Workflow, WorkflowVersion

MAX_IMPORT_ROWS = 100_000
DEFAULT_SPLITS = {Split.TRAIN: 0.7, Split.VALIDATION: 0.15, Split.TEST: 0.15}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _current_version(workflow: Workflow) -> WorkflowVersion:
    version = workflow.latest_version
    if version is None:
        raise ValidationError({"workflow": f"{workflow.name} has no version yet."})
    return version


@dataclass(frozen=True)
class CaseRow:
    """One validated case ready to insert."""

    fields: dict[str, Any]
    expected: dict[str, Any] | None
    split: str
    external_id: str
    difficulty: int = 0


def _validate_row(
    spec: WorkflowSpec,
    *,
    fields: Mapping[str, Any],
    expected: Mapping[str, Any] | None,
    split: str,
    external_id: str,
    where: str,
) -> tuple[CaseRow | None, dict[str, list[str]]]:
    """Validate one case; problems are keyed ``<where>fields.<name>`` (``where`` is e.g. ``line 4: ``)."""
    errors: dict[str, list[str]] = {}
    clean_fields: dict[str, Any] = {}
    try:
        clean_fields = spec.validate_case(fields)
    except SpecError as exc:
        for problem in exc.problems:
            errors.setdefault(f"{where}{problem.path}", []).append(problem.message)
    clean_expected = None
    if expected:
        decision = expected.get("decision")
        if not isinstance(decision, str) or not decision:
            errors.setdefault(f"{where}expected.decision", []).append(
                "an expected outcome needs a decision name"
            )
        else:
            try:
                arguments = spec.validate_decision(decision, expected.get("arguments") or {})
                clean_expected = {"decision": decision, "arguments": arguments}
            except SpecError as exc:
                for problem in exc.problems:
                    errors.setdefault(f"{where}expected.{problem.path}", []).append(problem.message)
    if split not in Split.values:
        errors.setdefault(f"{where}split", []).append(f"{split!r} is not one of {', '.join(Split.values)}")
    if errors:
        return None, errors
    return CaseRow(_jsonable(clean_fields), _jsonable(clean_expected), split, external_id), {}


@transaction.atomic
def case_create(
    *,
    actor: Actor,
    workflow: Workflow,
    fields: Mapping[str, Any],
    expected: Mapping[str, Any] | None = None,
    split: str = Split.LIVE,
    external_id: str = "",
    source: str = CaseSource.API,
    decide: bool = True,
) -> Case:
    """Validate and store one case. A live case is queued for the ``decisions`` workers on commit."""
    require(actor, "case.create")
    require_same_org(actor, workflow)
    version = _current_version(workflow)
    spec = WorkflowSpec.from_dict(version.spec)
    row, errors = _validate_row(
        spec, fields=fields, expected=expected, split=split, external_id=external_id, where=""
    )
    if row is None:
        raise ValidationError(errors)
    queue = decide and split == Split.LIVE
    case = Case.objects.create(
        organization=actor.organization,
        workflow=workflow,
        workflow_version=version,
        external_id=row.external_id,
        fields=row.fields,
        expected=row.expected,
        split=row.split,
        source=source,
        status=CaseStatus.QUEUED if queue else CaseStatus.NEW,
    )
    audit_record(
        actor=actor,
        verb="case.created",
        subject=case,
        payload={"workflow": workflow.pk, "split": split, "source": source, "external_id": external_id},
    )
    # --- webhooks: case.created (sent on commit; the data is built only if someone subscribes)
    webhooks_emit(
        organization=actor.organization,
        event="case.created",
        payload=lambda: webhook_payloads.case_created(case),
    )
    # --- end webhooks ---
    if queue:
        from workflows.tasks import decide_case

        # robust: the case is stored and stays queued if the broker cannot take the task (Redis
        # restarting); the caller still gets the case, and beat's requeue_lost_cases sends it later.
        transaction.on_commit(lambda: decide_case.delay(case.pk), robust=True)
    return case


def parse_case_file(text: str, *, fmt: str) -> list[tuple[int, dict[str, Any]]]:
    """Parse CSV or JSONL into (line number, record) pairs; each record has fields and optional
    expected, split and external_id. CSV columns: the case fields, plus ``external_id``, ``split``,
    ``expected_decision`` and ``expected.<argument>``. Empty CSV cells mean "not given"."""
    records: list[tuple[int, dict[str, Any]]] = []
    if fmt == "jsonl":
        errors: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                errors[f"line {number}"] = f"not valid JSON: {exc.msg} at column {exc.colno}"
                continue
            if not isinstance(obj, dict):
                errors[f"line {number}"] = "each line must be a JSON object"
                continue
            if "fields" not in obj:
                extra = {"external_id", "split", "expected"}
                obj = {
                    "fields": {k: v for k, v in obj.items() if k not in extra},
                    **{k: obj[k] for k in extra & obj.keys()},
                }
            if not isinstance(obj.get("fields"), dict):
                errors[f"line {number}"] = "'fields' must be an object"
                continue
            records.append((number, obj))
        if errors:
            raise ValidationError(errors)
        return records
    if fmt != "csv":
        raise ValidationError({"format": f"Unknown format {fmt!r}; use csv or jsonl."})
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValidationError({"line 1": "The CSV has no header line."})
    for row in reader:
        if None in row:
            raise ValidationError({f"line {reader.line_num}": "more values than header columns"})
        fields: dict[str, Any] = {}
        record: dict[str, Any] = {"fields": fields}
        arguments: dict[str, Any] = {}
        for column, value in row.items():
            if value is None or value == "":
                continue
            if column == "external_id" or column == "split":
                record[column] = value
            elif column == "expected_decision":
                record.setdefault("expected", {})["decision"] = value
            elif column.startswith("expected."):
                arguments[column.removeprefix("expected.")] = value
            else:
                fields[column] = value
        if arguments:
            record.setdefault("expected", {})["arguments"] = arguments
        records.append((reader.line_num, record))
    return records


@transaction.atomic
def case_import(
    *,
    actor: Actor,
    workflow: Workflow,
    text: str,
    fmt: str,
    default_split: str = Split.TRAIN,
) -> list[Case]:
    """Import cases from CSV or JSONL. Every row is validated first; on any error nothing is imported
    and the ValidationError names each bad line and field (``line 4: fields.report_date``)."""
    require(actor, "case.import")
    require_same_org(actor, workflow)
    records = parse_case_file(text, fmt=fmt)
    if not records:
        raise ValidationError({"file": "The file holds no cases."})
    if len(records) > MAX_IMPORT_ROWS:
        raise ValidationError(
            {"file": f"At most {MAX_IMPORT_ROWS:,} cases per import; got {len(records):,}."}
        )
    version = _current_version(workflow)
    spec = WorkflowSpec.from_dict(version.spec)
    rows: list[CaseRow] = []
    errors: dict[str, list[str]] = {}
    for number, record in records:
        row, row_errors = _validate_row(
            spec,
            fields=record["fields"],
            expected=record.get("expected"),
            split=str(record.get("split") or default_split),
            external_id=str(record.get("external_id") or ""),
            where=f"line {number}: ",
        )
        errors.update(row_errors)
        if row is not None:
            rows.append(row)
    if errors:
        raise ValidationError(errors)
    cases = _insert_cases(
        actor=actor, workflow=workflow, version=version, rows=rows, source=CaseSource.IMPORTED
    )
    audit_record(
        actor=actor,
        verb="cases.imported",
        subject=workflow,
        payload={"format": fmt, "count": len(cases), "first_id": cases[0].pk, "last_id": cases[-1].pk},
    )
    return cases


def _insert_cases(
    *, actor: Actor, workflow: Workflow, version: WorkflowVersion, rows: Sequence[CaseRow], source: str
) -> list[Case]:
    cases = Case.objects.bulk_create(
        [
            Case(
                organization=actor.organization,
                workflow=workflow,
                workflow_version=version,
                external_id=row.external_id,
                fields=row.fields,
                expected=row.expected,
                split=row.split,
                source=source,
                difficulty=row.difficulty,
            )
            for row in rows
        ],
        batch_size=500,
    )
    if cases and cases[0].pk is None:  # backends that do not return ids from bulk inserts
        cases = list(Case.objects.filter(workflow=workflow, source=source).order_by("-id")[: len(rows)])[::-1]
    # --- webhooks: case.created for each imported or generated case, after one check for subscribers
    webhooks_emit_many(
        organization=actor.organization,
        event="case.created",
        payloads=lambda: (webhook_payloads.case_created(case) for case in cases),
    )
    # --- end webhooks ---
    return cases


@transaction.atomic
def case_generate(
    *,
    actor: Actor,
    workflow: Workflow,
    count: int,
    seed: int,
    difficulty: int = 0,
    splits: Mapping[str, float] | None = None,
) -> list[Case]:
    """Generate ``count`` synthetic cases with expected outcomes from the workflow's pack, assigned to
    splits by a seeded shuffle in the given proportions (default 70/15/15 train/validation/test)."""
    require(actor, "case.create")
    require_same_org(actor, workflow)
    errors: dict[str, str] = {}
    if not workflow.pack:
        errors["workflow"] = f"{workflow.name} has no pack to generate cases from."
    if not 1 <= count <= 100_000:
        errors["count"] = "Generate between 1 and 100,000 cases."
    if not 0 <= difficulty <= 3:
        errors["difficulty"] = "Difficulty goes from 0 (plain) to 3 (edge cases)."
    splits = dict(splits or DEFAULT_SPLITS)
    if set(splits) - set(Split.values) or any(v < 0 for v in splits.values()) or sum(splits.values()) <= 0:
        errors["splits"] = f"Give non-negative proportions for {', '.join(Split.values)}."
    if errors:
        raise ValidationError(errors)
    from workflows.services.runs import environment_parts

    version = _current_version(workflow)
    spec, tables, _, pack = environment_parts(version)
    assert pack is not None
    generated = pack.generate_cases(count, seed=seed, difficulty=difficulty, tables=tables)
    order = list(range(count))
    random.Random(seed).shuffle(order)
    total = sum(splits.values())
    assigned: list[str] = [""] * count
    start = 0
    names = list(splits)
    for i, name in enumerate(names):
        size = count - start if i == len(names) - 1 else round(count * splits[name] / total)
        for index in order[start : start + size]:
            assigned[index] = name
        start += size
    rows = []
    for index, case in enumerate(generated):
        fields = spec.validate_case(case.fields)
        expected = (
            {"decision": case.expected.decision, "arguments": case.expected.arguments}
            if case.expected
            else None
        )
        rows.append(
            CaseRow(_jsonable(fields), _jsonable(expected), assigned[index], case.id, case.difficulty)
        )
    cases = _insert_cases(
        actor=actor, workflow=workflow, version=version, rows=rows, source=CaseSource.GENERATED
    )
    audit_record(
        actor=actor,
        verb="cases.generated",
        subject=workflow,
        payload={"count": count, "seed": seed, "difficulty": difficulty, "splits": splits},
    )
    return cases
