"""Policies and versions: list, create a rules version, evaluate, promote through the gates."""

from __future__ import annotations

import pytest

from caseloop.accounts.models import Role
from tests.api.conftest import assert_error, key_client, member_client
from training.models import EvaluationReport, PolicyVersion, Stage
from workflows.packs import get_pack

pytestmark = pytest.mark.django_db


def test_list_policies_and_versions(api, claims):
    workflow, version = claims
    policies = api.get(f"/api/v1/policies?workflow={workflow.pk}").json()["results"]
    assert [(p["name"], p["kind"]) for p in policies] == [("Expert rules", "rules")]
    versions = api.get(f"/api/v1/policies/{version.policy_id}/versions").json()["results"]
    assert [(v["id"], v["stage"]) for v in versions] == [(version.pk, "supervised")]
    assert api.get(f"/api/v1/policies/{version.policy_id}/versions?stage=retired").json()["results"] == []
    assert api.get(f"/api/v1/policy-versions/{version.pk}").json()["number"] == 1


def test_create_evaluate_and_promote_a_rules_version(api, claims):
    workflow, production = claims
    policy = api.post(
        "/api/v1/policies", {"workflow": workflow.pk, "name": "Challenger", "kind": "rules"}, format="json"
    )
    assert policy.status_code == 201, policy.content
    policy_id = policy.json()["id"]
    version = api.post(
        f"/api/v1/policies/{policy_id}/versions", {"config": get_pack("claims").rules_dict}, format="json"
    )
    assert version.status_code == 201, version.content
    version_id = version.json()["id"]
    assert version.json()["stage"] == "candidate"
    # no evaluation against production yet: the gate refuses, with the reason
    errors = assert_error(
        api.post(f"/api/v1/policy-versions/{version_id}/promote", {"stage": "supervised"}, format="json"),
        400,
        "validation_error",
    )
    assert "version" in errors and "evaluate" in errors["version"][0]
    report = api.post(
        f"/api/v1/policy-versions/{version_id}/evaluations",
        {"split": "validation", "limit": 5},
        format="json",
    )
    assert report.status_code == 201, report.content
    assert report.json()["n_cases"] == 5 and "score/mean" in report.json()["metrics"]
    assert report.json()["production_version"] == production.pk
    assert EvaluationReport.objects.filter(policy_version_id=version_id).count() == 1
    listed = api.get(f"/api/v1/policy-versions/{version_id}/evaluations").json()["results"]
    assert [r["id"] for r in listed] == [report.json()["id"]]
    promoted = api.post(
        f"/api/v1/policy-versions/{version_id}/promote", {"stage": "supervised"}, format="json"
    )
    assert promoted.status_code == 200, promoted.content
    assert promoted.json()["stage"] == "supervised"
    assert PolicyVersion.objects.get(pk=production.pk).stage == Stage.RETIRED


def test_promotion_validation(api, claims):
    _, version = claims
    errors = assert_error(
        api.post(f"/api/v1/policy-versions/{version.pk}/promote", {"stage": "sideways"}, format="json"),
        400,
        "validation_error",
    )
    assert "stage" in errors
    errors = assert_error(
        api.post(f"/api/v1/policy-versions/{version.pk}/promote", {"stage": "autonomous"}, format="json"),
        400,
        "validation_error",
    )
    assert "stage" in errors and "reviewed" in errors["stage"][0]


def test_evaluation_refuses_the_live_split(api, claims):
    _, version = claims
    errors = assert_error(
        api.post(f"/api/v1/policy-versions/{version.pk}/evaluations", {"split": "live"}, format="json"),
        400,
        "validation_error",
    )
    assert "split" in errors


def test_neural_versions_come_from_training_only(api, claims):
    workflow, _ = claims
    policy = api.post(
        "/api/v1/policies", {"workflow": workflow.pk, "name": "Net", "kind": "mlp"}, format="json"
    )
    response = api.post(f"/api/v1/policies/{policy.json()['id']}/versions", {"config": {}}, format="json")
    assert "config" in assert_error(response, 400, "validation_error")


def test_only_admins_and_promote_scoped_keys_promote(admin, claims):
    _, version = claims
    expert = member_client(admin.organization, Role.EXPERT)
    body = {"stage": "retired"}
    assert_error(
        expert.post(f"/api/v1/policy-versions/{version.pk}/promote", body, format="json"),
        403,
        "permission_denied",
    )
    writer = key_client(admin, ["policies:read", "policies:write"])
    assert_error(
        writer.post(f"/api/v1/policy-versions/{version.pk}/promote", body, format="json"),
        403,
        "permission_denied",
    )
    promoter = key_client(admin, ["policies:read", "policies:promote"])
    assert (
        promoter.post(f"/api/v1/policy-versions/{version.pk}/promote", body, format="json").status_code == 200
    )
