"""rubric_preview: a draft rubric scored against baselines, recorded runs and the exploit policies."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from tests.factories import make_actor, make_claims_workflow, make_organization
from workflows.models import Case, Run
from workflows.packs import get_pack
from workflows.services import run_policy
from workflows.services.rubrics import rubric_preview

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

DEFAULT = get_pack("claims").default_rubric_dict
APPROVAL_ONLY = {
    "criteria": [
        {
            "name": "approved",
            "kind": "expression",
            "weight": 1,
            "params": {"expression": "decision == 'approve'"},
        }
    ]
}


@pytest.fixture
def claims():
    admin = make_actor(make_organization("Preview Mutual"))
    workflow, version = make_claims_workflow(admin, cases=40)
    expert = make_actor(admin.organization, role=Role.EXPERT)
    return expert, workflow, version


def test_default_rubric_scores_the_reference_above_every_exploit(claims):
    actor, workflow, _ = claims
    preview = rubric_preview(
        actor=actor, workflow=workflow, definition=get_pack("claims").default_rubric_dict
    )
    json.dumps(preview)  # JSON-able as promised
    policies = preview["policies"]
    assert {"random", "always_approve", "skip_all_checks", "expert_rules", "reference_solver"} <= set(
        policies
    )
    reference = policies["reference_solver"]["mean"]
    assert reference > 0.8
    assert all(policies[name]["mean"] < reference for name in preview["redteam"]["scores"])
    assert preview["redteam"]["passed"] is True
    assert (
        preview["cases"] == Case.objects.filter(workflow=workflow, split__in=["validation", "test"]).count()
    )
    criteria = policies["reference_solver"]["criteria"]
    assert set(criteria) == {c["name"] for c in preview["criteria"]}
    assert criteria["right_outcome"]["mean"] == pytest.approx(policies["reference_solver"]["accuracy"])


def test_a_rubric_that_rewards_any_approval_is_flagged(claims):
    actor, workflow, _ = claims
    preview = rubric_preview(actor=actor, workflow=workflow, definition=APPROVAL_ONLY, limit=10)
    assert preview["cases"] == 10
    assert preview["policies"]["always_approve"]["mean"] == 1.0
    assert "always_approve" in preview["redteam"]["flagged"]
    assert "skip_all_checks" in preview["redteam"]["flagged"]
    assert preview["redteam"]["passed"] is False


def test_recorded_runs_are_scored_again_under_the_draft(claims):
    actor, workflow, version = claims
    case = Case.objects.filter(workflow=workflow, split="validation").first()
    run = run_policy(policy_version=version, case=case)
    preview = rubric_preview(
        actor=actor, workflow=workflow, definition=get_pack("claims").default_rubric_dict
    )
    (again,) = [r for r in preview["runs"] if r["run"] == run.pk]
    assert again["score"] == pytest.approx(run.score)  # same rubric, same trajectory, same score
    preview = rubric_preview(actor=actor, workflow=workflow, definition=APPROVAL_ONLY)
    (again,) = [r for r in preview["runs"] if r["run"] == run.pk]
    assert again["score"] == (1.0 if run.decision.name == "approve" else 0.0)


def test_an_invalid_draft_names_every_problem_by_path_and_writes_nothing(claims):
    actor, workflow, _ = claims
    events = AuditEvent.objects.count()
    draft = {
        "step_cost": 3,
        "criteria": [
            {"name": "a", "kind": "numeric_tolerance", "params": {"argument": "reason_code"}},
            {"name": "b", "kind": "forbidden_step", "params": {"tool_or_decision": "pay_now"}},
            {"name": "c", "kind": "teleport"},
        ],
    }
    with pytest.raises(ValidationError) as caught:
        rubric_preview(actor=actor, workflow=workflow, definition=draft)
    paths = caught.value.message_dict
    assert "definition.step_cost" in paths
    assert "definition.criteria[0].params.tolerance" in paths
    assert "not numeric" in " ".join(paths["definition.criteria[0].params.argument"])
    assert "unknown tool or decision 'pay_now'" in " ".join(
        paths["definition.criteria[1].params.tool_or_decision"]
    )
    assert "definition.criteria[2].kind" in paths
    assert AuditEvent.objects.count() == events
    assert Run.objects.count() == 0


def test_limit_and_definition_shape_are_checked(claims):
    actor, workflow, _ = claims
    with pytest.raises(ValidationError) as caught:
        rubric_preview(actor=actor, workflow=workflow, definition=APPROVAL_ONLY, limit=0)
    assert "limit" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        rubric_preview(actor=actor, workflow=workflow, definition=["not", "a", "rubric"])
    assert "definition" in caught.value.message_dict


def test_another_organisation_cannot_preview(claims):
    _, workflow, _ = claims
    stranger = make_actor(make_organization("Elsewhere"), role=Role.EXPERT)
    with pytest.raises(PermissionDenied):
        rubric_preview(actor=stranger, workflow=workflow, definition=APPROVAL_ONLY)


def test_a_workflow_without_labelled_cases_says_so():
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor, cases=0)
    with pytest.raises(ValidationError) as caught:
        rubric_preview(actor=actor, workflow=workflow, definition=APPROVAL_ONLY)
    assert "cases" in caught.value.message_dict
