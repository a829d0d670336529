"""Workflows and their versions, rubrics and theirs."""

from __future__ import annotations

import pytest

from caseloop.audit.models import AuditEvent
from tests.api.conftest import assert_error
from workflows.models import Workflow
from workflows.packs import get_pack

pytestmark = pytest.mark.django_db


def test_create_a_workflow_from_a_pack_and_read_it_back(api, admin):
    response = api.post("/api/v1/workflows", {"name": "Claims EU", "pack": "claims"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "claims-eu" and body["latest_version"] == 1
    assert response["Location"] == f"/api/v1/workflows/{body['id']}"
    workflow = Workflow.objects.get(pk=body["id"])
    assert workflow.organization == admin.organization
    assert AuditEvent.objects.filter(verb="workflow.created", subject_id=str(workflow.pk)).exists()
    assert api.get(f"/api/v1/workflows/{workflow.pk}").json() == body
    listed = api.get("/api/v1/workflows").json()
    assert [w["id"] for w in listed["results"]] == [workflow.pk]


def test_workflow_needs_a_spec_or_a_known_pack(api):
    errors = assert_error(
        api.post("/api/v1/workflows", {"name": "Empty"}, format="json"), 400, "validation_error"
    )
    assert "spec" in errors
    errors = assert_error(
        api.post("/api/v1/workflows", {"name": "X", "pack": "nope"}, format="json"), 400, "validation_error"
    )
    assert "pack" in errors


def test_spec_problems_are_named_by_path(api):
    spec = dict(get_pack("claims").spec_dict)
    spec["decisions"] = "not a list"
    response = api.post("/api/v1/workflows", {"name": "Broken", "spec": spec}, format="json")
    errors = assert_error(response, 400, "validation_error")
    assert any(key.startswith("spec.decisions") for key in errors), errors


def test_versions_are_appended_and_listed_newest_first(api, claims):
    workflow, _ = claims
    spec = api.get(f"/api/v1/workflows/{workflow.pk}/versions/1").json()["spec"]
    response = api.post(
        f"/api/v1/workflows/{workflow.pk}/versions", {"spec": spec, "note": "again"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["number"] == 2
    listed = api.get(f"/api/v1/workflows/{workflow.pk}/versions").json()["results"]
    assert [v["number"] for v in listed] == [2, 1]
    assert api.get(f"/api/v1/workflows/{workflow.pk}").json()["latest_version"] == 2
    assert_error(api.get(f"/api/v1/workflows/{workflow.pk}/versions/9"), 404, "not_found")


def test_rubrics_and_their_versions(api, claims):
    workflow, _ = claims
    definition = get_pack("claims").default_rubric_dict
    response = api.post(
        "/api/v1/rubrics",
        {"workflow": workflow.pk, "name": "Strict", "definition": definition},
        format="json",
    )
    assert response.status_code == 201, response.content
    rubric = response.json()
    assert rubric["latest_version"] == 1
    listed = api.get(f"/api/v1/rubrics?workflow={workflow.pk}").json()["results"]
    assert {r["name"] for r in listed} == {"Default", "Strict"}
    response = api.post(f"/api/v1/rubrics/{rubric['id']}/versions", {"definition": definition}, format="json")
    assert response.status_code == 201 and response.json()["number"] == 2
    # a draft can be edited in place until something is scored with it
    response = api.patch(
        f"/api/v1/rubrics/{rubric['id']}/versions/2",
        {"definition": definition, "note": "tuned"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["note"] == "tuned"
    bad = dict(definition, criteria=[{"name": "x", "kind": "no-such-kind"}])
    errors = assert_error(
        api.post(f"/api/v1/rubrics/{rubric['id']}/versions", {"definition": bad}, format="json"),
        400,
        "validation_error",
    )
    assert any(key.startswith("definition.criteria") for key in errors), errors


def test_a_frozen_rubric_version_cannot_be_edited(api, admin, claims):
    from tests.factories import decide_live_case, live_case_fields
    from workflows.models import Rubric

    workflow, _ = claims
    decide_live_case(admin, workflow, live_case_fields(workflow)[0])  # scores with the default rubric v1
    rubric = Rubric.objects.get(workflow=workflow, name="Default")
    response = api.patch(
        f"/api/v1/rubrics/{rubric.pk}/versions/1",
        {"definition": get_pack("claims").default_rubric_dict},
        format="json",
    )
    errors = assert_error(response, 400, "validation_error")
    assert "version" in errors
