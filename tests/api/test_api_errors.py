"""One error shape for every 4xx, from DRF, from services, and from Django itself on /api/ paths."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from tests.api.conftest import assert_error
from tests.factories import live_case_fields

pytestmark = pytest.mark.django_db


def test_no_credential_answers_401_with_the_bearer_challenge():
    response = APIClient().get("/api/v1/workflows")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"


def test_unknown_and_malformed_keys_answer_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer cl_deadbeef_nottherealsecret")
    assert_error(client.get("/api/v1/ping"), 401, "authentication_failed")
    client.credentials(HTTP_AUTHORIZATION="Bearer cl_\x00bad key")
    assert_error(client.get("/api/v1/ping"), 401, "authentication_failed")


def test_revoked_key_answers_401(admin, api):
    from caseloop.accounts.models import ApiKey
    from caseloop.accounts.services import api_key_revoke

    assert api.get("/api/v1/ping").status_code == 200
    api_key_revoke(actor=admin, key=ApiKey.objects.get(organization=admin.organization))
    assert_error(api.get("/api/v1/ping"), 401, "authentication_failed")


def test_unknown_api_paths_answer_404_in_the_error_shape(api):
    assert_error(api.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(api.get("/api/v2/workflows"), 404, "not_found")
    assert_error(APIClient().get("/api/whatever"), 404, "not_found")
    # ids too long for the database are unknown paths, not server errors
    assert_error(api.get("/api/v1/cases/99999999999999999999999"), 404, "not_found")


def test_missing_object_answers_404(api):
    errors = assert_error(api.get("/api/v1/cases/987654"), 404, "not_found")
    assert errors == {}


def test_serializer_errors_name_each_field(api, claims):
    workflow, _ = claims
    response = api.post("/api/v1/cases", {"workflow": workflow.pk, "split": "nowhere"}, format="json")
    errors = assert_error(response, 400, "validation_error")
    assert set(errors) == {"fields", "split"}
    assert all(isinstance(m, list) and m for m in errors.values())


def test_service_validation_errors_keep_their_field_paths(api, claims):
    workflow, _ = claims
    fields = dict(live_case_fields(workflow)[0], amount_claimed="lots")
    response = api.post("/api/v1/cases", {"workflow": workflow.pk, "fields": fields}, format="json")
    errors = assert_error(response, 400, "validation_error")
    assert "fields.amount_claimed" in errors, errors
    assert response.json()["detail"].startswith("fields.amount_claimed:")


def test_state_conflicts_from_services_are_validation_errors_without_a_field(admin, api, claims):
    from tests.factories import decide_live_case
    from workflows.models import Decision

    workflow, _ = claims
    decision = decide_live_case(admin, workflow, live_case_fields(workflow)[0])
    assert Decision.objects.filter(pk=decision.pk).exists()
    response = api.post(f"/api/v1/decisions/{decision.pk}/execute")
    errors = assert_error(response, 400, "validation_error")
    assert list(errors) == ["non_field_errors"]


def test_malformed_json_and_non_json_bodies(api):
    response = api.post("/api/v1/workflows", data="{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")
    response = api.post("/api/v1/workflows", data='{"name": NaN}', content_type="application/json")
    assert_error(response, 400, "parse_error")
    response = api.post("/api/v1/workflows", data='{"name": 1e999}', content_type="application/json")
    assert_error(response, 400, "parse_error")
    response = api.post("/api/v1/workflows", data="name=x", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")
    deep = "[" * 100_000 + "]" * 100_000
    response = api.post("/api/v1/workflows", data=deep, content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_strings_the_database_cannot_store_are_refused(api, claims):
    workflow, _ = claims
    fields = dict(live_case_fields(workflow)[0], claimant="Nul\x00l")
    response = api.post("/api/v1/cases", {"workflow": workflow.pk, "fields": fields}, format="json")
    assert_error(response, 400, "parse_error")
    body = '{"workflow": ' + str(workflow.pk) + ', "fields": {"claimant": "\\ud800"}}'
    response = api.post("/api/v1/cases", data=body, content_type="application/json")
    assert_error(response, 400, "parse_error")
    assert_error(api.get("/api/v1/audit/events?verb=a%00b"), 400, "validation_error")


def test_oversized_bodies_answer_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps({"name": "x" * 4000, "pack": "claims"})
    response = api.post("/api/v1/workflows", data=body, content_type="application/json")
    assert_error(response, 413, "payload_too_large")


def test_wrong_method_answers_405(api):
    assert_error(api.delete("/api/v1/workflows"), 405, "method_not_allowed")


def test_bad_query_parameters_answer_400(api):
    errors = assert_error(api.get("/api/v1/cases?status=sideways&workflow=0"), 400, "validation_error")
    assert set(errors) == {"status", "workflow"}
    assert_error(api.get("/api/v1/decisions/1?wait=31"), 400, "validation_error")
    assert_error(api.get("/api/v1/cases?created_after=yesterday"), 400, "validation_error")


def test_unknown_paths_answer_404_to_every_method_even_with_a_session():
    from caseloop.accounts.models import Role
    from tests.api.conftest import member_client
    from tests.factories import make_organization

    client = member_client(make_organization(), Role.ADMIN, csrf=True)
    assert_error(client.post("/api/v1/decisions/abc/execute"), 404, "not_found")
    assert_error(client.delete("/api/v1/nothing"), 404, "not_found")
    assert_error(client.get("/api/v1/policies/%0A%0A"), 404, "not_found")
