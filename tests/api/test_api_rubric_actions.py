"""Rubric actions over the API: score-preview of a draft definition and red-teaming a version."""

from __future__ import annotations

import copy

import pytest

from caseloop.audit.models import AuditEvent
from tests.api.conftest import assert_error, key_client
from tests.factories import make_claims_workflow
from workflows.models import Rubric, RubricVersion
from workflows.packs import get_pack

pytestmark = pytest.mark.django_db


def test_score_preview_of_a_draft_saves_nothing(admin, api, claims):
    workflow, _ = claims
    versions, events = RubricVersion.objects.count(), AuditEvent.objects.count()
    draft = get_pack("claims").default_rubric_dict
    response = api.post(
        f"/api/v1/workflows/{workflow.pk}/rubric-preview", {"definition": draft, "limit": 8}, format="json"
    )
    assert response.status_code == 200, response.content
    preview = response.json()
    assert preview["cases"] == 8 and preview["workflow_version"] == 1
    assert {"expert_rules", "reference_solver", "random"} <= set(preview["policies"])
    solver = preview["policies"]["reference_solver"]
    assert solver["mean"] > preview["policies"]["random"]["mean"]
    assert set(preview["redteam"]) >= {"scores", "flagged", "threshold", "passed"}
    assert [c["name"] for c in preview["criteria"]] == [c["name"] for c in draft["criteria"]]
    assert (RubricVersion.objects.count(), AuditEvent.objects.count()) == (versions, events)


def test_a_broken_draft_is_refused_by_path(api, claims):
    workflow, _ = claims
    draft = copy.deepcopy(get_pack("claims").default_rubric_dict)
    draft["criteria"][0]["weight"] = "heavy"
    response = api.post(
        f"/api/v1/workflows/{workflow.pk}/rubric-preview", {"definition": draft}, format="json"
    )
    errors = assert_error(response, 400, "validation_error")
    assert any(key.startswith("definition.criteria[0]") for key in errors), errors
    response = api.post(
        f"/api/v1/workflows/{workflow.pk}/rubric-preview", {"definition": draft, "limit": 0}, format="json"
    )
    assert "limit" in assert_error(response, 400, "validation_error")


def test_red_team_a_rubric_version(admin, api, claims):
    workflow, _ = claims
    rubric = Rubric.objects.get(workflow=workflow)
    response = api.post(
        f"/api/v1/rubrics/{rubric.pk}/versions/1/red-team", {"limit": 10, "threshold": 0.6}, format="json"
    )
    assert response.status_code == 200, response.content
    report = response.json()
    assert report["threshold"] == 0.6 and report["scores"]
    assert report["passed"] == (report["flagged"] == [])
    assert all(report["scores"][name] >= 0.6 for name in report["flagged"])
    assert report["reference_score"] is not None


def test_red_team_needs_held_out_cases(admin, api):
    workflow, _ = make_claims_workflow(admin)  # no cases at all
    rubric = Rubric.objects.get(workflow=workflow)
    response = api.post(f"/api/v1/rubrics/{rubric.pk}/versions/1/red-team", {}, format="json")
    assert "cases" in assert_error(response, 400, "validation_error")


def test_readers_may_preview_and_red_team(admin, claims):
    workflow, _ = claims
    reader = key_client(admin, ["workflows:read"])
    rubric = Rubric.objects.get(workflow=workflow)
    assert (
        reader.post(
            f"/api/v1/rubrics/{rubric.pk}/versions/1/red-team", {"limit": 5}, format="json"
        ).status_code
        == 200
    )
    no_scope = key_client(admin, ["cases:read"])
    assert_error(
        no_scope.post(f"/api/v1/rubrics/{rubric.pk}/versions/1/red-team", {}, format="json"),
        403,
        "permission_denied",
    )
