"""Workflows, rubrics and cases through the services: validation names the field or line, and a
failure writes nothing."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from tests.factories import live_case_fields, make_actor, make_claims_workflow
from workflows.models import Case, CaseStatus, Decision, DecisionStatus, RubricVersion, Run, Split
from workflows.packs import get_pack
from workflows.services import (
    case_create,
    case_import,
    rubric_create,
    rubric_version_update,
    run_policy,
    workflow_create,
    workflow_version_create,
)

pytestmark = pytest.mark.django_db


def _csv(rows: list[list]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


@pytest.fixture
def claims():
    actor = make_actor(role=Role.ADMIN)
    workflow, version = make_claims_workflow(actor, cases=40)
    return actor, workflow, version


def test_workflow_versions_number_up_and_keep_old_specs(claims):
    actor, workflow, _ = claims
    spec = dict(get_pack("claims").spec_dict, max_steps=20)
    second = workflow_version_create(actor=actor, workflow=workflow, spec=spec, note="more steps")
    assert second.number == 2
    assert workflow.versions.get(number=1).spec["max_steps"] != 20


def test_a_bad_spec_is_refused_with_its_path_and_nothing_is_written():
    actor = make_actor()
    spec = json.loads(json.dumps(get_pack("claims").spec_dict))
    spec["case_fields"][1]["type"] = "complex-number"
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as exc:
        workflow_create(actor=actor, name="Broken", spec=spec)
    assert any(key.startswith("spec.case_fields[1]") for key in exc.value.message_dict)
    assert AuditEvent.objects.count() == before


def test_reviewers_cannot_author_workflows():
    actor = make_actor(role=Role.REVIEWER)
    with pytest.raises(PermissionDenied):
        workflow_create(actor=actor, name="Nope", spec=get_pack("claims").spec_dict)


def test_bad_rubric_criteria_are_refused_with_the_criterion_named(claims):
    actor, workflow, _ = claims
    definition = json.loads(json.dumps(get_pack("claims").default_rubric_dict))
    definition["criteria"][0]["weight"] = -1
    definition["criteria"].append(
        {"name": "x", "kind": "expression", "weight": 1, "params": {"expression": "1 +"}}
    )
    with pytest.raises(ValidationError) as exc:
        rubric_create(actor=actor, workflow=workflow, name="Broken", definition=definition)
    keys = exc.value.message_dict
    assert any(k.startswith("definition.criteria[0]") for k in keys)
    last = len(definition["criteria"]) - 1
    assert any(k.startswith(f"definition.criteria[{last}]") for k in keys)


def test_bad_case_fields_are_refused_with_the_field_named(claims):
    actor, workflow, _ = claims
    fields = live_case_fields(workflow)[0]
    fields["amount_claimed"] = -50
    fields.pop("policy_number")
    with pytest.raises(ValidationError) as exc:
        case_create(actor=actor, workflow=workflow, fields=fields)
    assert set(exc.value.message_dict) >= {"fields.amount_claimed", "fields.policy_number"}
    assert not Case.objects.filter(split=Split.LIVE).exists()


def test_case_import_names_line_and_field_and_imports_nothing_on_error(claims):
    actor, workflow, _ = claims
    rows = live_case_fields(workflow, count=3)
    rows[1]["report_date"] = "2026-02-31"
    text = "\n".join(json.dumps({"fields": r, "external_id": f"c{i}"}) for i, r in enumerate(rows))
    before = Case.objects.count()
    with pytest.raises(ValidationError) as exc:
        case_import(actor=actor, workflow=workflow, text=text, fmt="jsonl")
    assert list(exc.value.message_dict) == ["line 2: fields.report_date"]
    assert Case.objects.count() == before


def test_case_import_from_csv_with_expected_outcomes(claims):
    actor, workflow, _ = claims
    rows = live_case_fields(workflow, count=2)
    columns = list(rows[0])
    text = _csv(
        [[*columns, "expected_decision", "expected.amount"]]
        + [[*(row[c] for c in columns), "approve", "1200.50"] for row in rows]
    )
    cases = case_import(actor=actor, workflow=workflow, text=text, fmt="csv", default_split="validation")
    assert len(cases) == 2
    stored = Case.objects.get(pk=cases[0].pk)
    assert stored.expected == {"decision": "approve", "arguments": {"amount": 1200.5}}
    assert stored.split == "validation"
    assert AuditEvent.objects.filter(verb="cases.imported", payload__count=2).exists()


def test_case_import_csv_with_a_bad_value_names_line(claims):
    actor, workflow, _ = claims
    row = live_case_fields(workflow)[0]
    columns = list(row)
    bad = dict(row, claim_type="meteor")
    text = _csv([columns, [row[c] for c in columns], [bad[c] for c in columns]])
    with pytest.raises(ValidationError) as exc:
        case_import(actor=actor, workflow=workflow, text=text, fmt="csv")
    assert "line 3: fields.claim_type" in exc.value.message_dict


def test_run_policy_records_run_steps_decision_and_one_audit_event_per_step(claims):
    _, workflow, version = claims
    case = Case.objects.filter(workflow=workflow, split=Split.VALIDATION).first()
    before = AuditEvent.objects.filter(verb__startswith="agent.").count()
    run = run_policy(policy_version=version, case=case)
    steps = list(run.steps.order_by("index"))
    assert steps and steps[-1].kind == "decision"
    assert run.score is not None and run.breakdown
    events = AuditEvent.objects.filter(verb__startswith="agent.").count() - before
    assert events == len(steps)
    decided = AuditEvent.objects.get(verb="agent.decided", subject_id=str(run.pk))
    assert decided.payload["explanation"] == steps[-1].explanation != ""
    assert Decision.objects.get(run=run).name == steps[-1].action


def test_a_rubric_version_freezes_once_it_has_scored_a_run(claims):
    actor, workflow, version = claims
    rubric_version = RubricVersion.objects.get(rubric__workflow=workflow)
    rubric_version_update(
        actor=actor, version=rubric_version, definition=rubric_version.definition, note="ok"
    )
    run_policy(policy_version=version, case=Case.objects.filter(workflow=workflow).first())
    with pytest.raises(ValidationError):
        rubric_version_update(actor=actor, version=rubric_version, definition=rubric_version.definition)


def test_live_case_is_decided_by_the_production_policy_and_waits_for_review(
    claims, django_capture_on_commit_callbacks
):
    actor, workflow, _ = claims
    # Eager Celery: the task runs on commit, in this process.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        case = case_create(actor=actor, workflow=workflow, fields=live_case_fields(workflow)[0])
    assert len(callbacks) == 1
    case.refresh_from_db()
    assert case.status == CaseStatus.DECIDED
    decision = Decision.objects.get(case=case)
    assert decision.status == DecisionStatus.PENDING_REVIEW
    assert Run.objects.filter(case=case).count() == 1
    assert AuditEvent.objects.filter(verb="decision.pending_review", subject_id=str(decision.pk)).exists()
