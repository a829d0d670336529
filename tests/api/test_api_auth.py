"""Authentication, scopes, roles and organisation isolation on every kind of resource."""

from __future__ import annotations

import pytest

from caseloop.accounts.models import Role
from tests.api.conftest import assert_error, key_client, member_client
from tests.factories import decide_live_case, live_case_fields, make_claims_workflow

pytestmark = pytest.mark.django_db


def test_a_key_acts_only_within_its_scopes(admin, claims):
    workflow, _ = claims
    reader = key_client(admin, ["workflows:read", "cases:read"])
    assert reader.get("/api/v1/workflows").status_code == 200
    assert reader.get("/api/v1/cases").status_code == 200
    response = reader.post(
        "/api/v1/cases", {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]}, format="json"
    )
    assert_error(response, 403, "permission_denied")
    assert "cases:write" in response.json()["detail"]
    assert_error(reader.get("/api/v1/audit/events"), 403, "permission_denied")
    assert_error(reader.get("/api/v1/training-jobs"), 403, "permission_denied")
    assert_error(reader.get("/api/v1/policies"), 403, "permission_denied")


def test_the_admin_scope_grants_everything(admin, claims):
    workflow, _ = claims
    client = key_client(admin, ["admin"])
    assert client.get("/api/v1/audit/events").status_code == 200
    response = client.post(
        "/api/v1/cases", {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]}, format="json"
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/api/v1/workflows", "workflows:read"),
        ("/api/v1/rubrics", "workflows:read"),
        ("/api/v1/cases", "cases:read"),
        ("/api/v1/decisions", "decisions:read"),
        ("/api/v1/policies", "policies:read"),
        ("/api/v1/training-jobs", "training:read"),
        ("/api/v1/audit/events", "audit:read"),
        ("/api/v1/audit/verify", "audit:read"),
        ("/api/v1/audit/export", "audit:read"),
    ],
)
def test_each_read_needs_its_scope(admin, path, scope):
    assert key_client(admin, [scope]).get(path).status_code == 200
    others = [s for s in ("workflows:read", "cases:write", "webhooks:write") if s != scope]
    assert_error(key_client(admin, others).get(path), 403, "permission_denied")


def test_session_members_act_through_their_role(admin, claims):
    workflow, _ = claims
    reviewer = member_client(admin.organization, Role.REVIEWER)
    assert reviewer.get("/api/v1/cases").status_code == 200
    response = reviewer.post("/api/v1/workflows", {"name": "Mine", "pack": "claims"}, format="json")
    assert_error(response, 403, "permission_denied")
    assert "role reviewer" in response.json()["detail"]
    assert_error(reviewer.get("/api/v1/audit/events"), 403, "permission_denied")
    auditor = member_client(admin.organization, Role.AUDITOR)
    assert auditor.get("/api/v1/audit/events").status_code == 200
    expert = member_client(admin.organization, Role.EXPERT)
    response = expert.post("/api/v1/workflows", {"name": "Expert's", "pack": "claims"}, format="json")
    assert response.status_code == 201, response.content
    assert_error(
        expert.post("/api/v1/training-jobs", {"workflow": workflow.pk}, format="json"),
        403,
        "permission_denied",
    )


def test_session_writes_need_the_csrf_token(admin):
    client = member_client(admin.organization, Role.ADMIN, csrf=True)
    assert client.get("/api/v1/workflows").status_code == 200  # safe methods need no token
    response = client.post("/api/v1/workflows", {"name": "No token", "pack": "claims"}, format="json")
    assert_error(response, 403, "permission_denied")
    assert "CSRF" in response.json()["detail"]
    client.get("/login/")  # the login page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/workflows", {"name": "With token", "pack": "claims"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201, response.content


def test_a_signed_in_user_without_organisation_is_refused():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="loner", password="x" * 12)
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user)
    assert_error(client.get("/api/v1/workflows"), 403, "permission_denied")


def test_another_organisations_objects_answer_404_everywhere(admin, other_admin):
    """Every object of another organisation is unknown: 404, never 403, never the data."""
    from workflows.models import Rubric

    workflow, version = make_claims_workflow(other_admin, cases=20)
    decision = decide_live_case(other_admin, workflow, live_case_fields(workflow)[0])
    rubric = Rubric.objects.get(workflow=workflow)
    client = key_client(admin)
    for path in [
        f"/api/v1/workflows/{workflow.pk}",
        f"/api/v1/workflows/{workflow.pk}/versions",
        f"/api/v1/workflows/{workflow.pk}/versions/1",
        f"/api/v1/rubrics/{rubric.pk}",
        f"/api/v1/rubrics/{rubric.pk}/versions",
        f"/api/v1/rubrics/{rubric.pk}/versions/1",
        f"/api/v1/cases/{decision.case_id}",
        f"/api/v1/decisions/{decision.pk}",
        f"/api/v1/decisions/{decision.pk}/reviews",
        f"/api/v1/policies/{version.policy_id}",
        f"/api/v1/policies/{version.policy_id}/versions",
        f"/api/v1/policy-versions/{version.pk}",
        f"/api/v1/policy-versions/{version.pk}/evaluations",
    ]:
        assert_error(client.get(path), 404, "not_found")
    for path, body in [
        ("/api/v1/cases", {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0]}),
        ("/api/v1/cases/bulk", {"workflow": workflow.pk, "cases": [{"fields": {}}]}),
        (f"/api/v1/workflows/{workflow.pk}/versions", {"spec": {}}),
        ("/api/v1/rubrics", {"workflow": workflow.pk, "name": "x", "definition": {}}),
        (f"/api/v1/rubrics/{rubric.pk}/versions", {"definition": {}}),
        (f"/api/v1/rubrics/{rubric.pk}/versions/1/red-team", {}),
        (f"/api/v1/workflows/{workflow.pk}/rubric-preview", {"definition": {}}),
        (f"/api/v1/decisions/{decision.pk}/execute", {}),
        (f"/api/v1/decisions/{decision.pk}/reviews", {"verdict": "approve"}),
        (f"/api/v1/decisions/{decision.pk}/release", {}),
        (f"/api/v1/policy-versions/{version.pk}/promote", {"stage": "retired"}),
        (f"/api/v1/policy-versions/{version.pk}/evaluations", {}),
        ("/api/v1/training-jobs", {"workflow": workflow.pk}),
        ("/api/v1/reviews/claim", {"workflow": workflow.pk}),
    ]:
        assert_error(client.post(path, body, format="json"), 404, "not_found")
    # and lists never show them
    for path in [
        "/api/v1/workflows",
        "/api/v1/cases",
        "/api/v1/decisions",
        "/api/v1/policies",
        "/api/v1/rubrics",
    ]:
        assert client.get(path).json()["results"] == [], path
    assert_error(client.get(f"/api/v1/cases?workflow={workflow.pk}"), 404, "not_found")
