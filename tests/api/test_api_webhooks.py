"""Webhooks over the API: create (secret once), list, get, ping, delivery log, disable, enable, delete."""

from __future__ import annotations

import pytest

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from caseloop.webhooks.models import Webhook, WebhookDelivery
from tests.api.conftest import assert_error, key_client, member_client

pytestmark = pytest.mark.django_db

HOOK = {"url": "https://hooks.example.com/caseloop", "events": ["decision.finalized", "case.created"]}


def test_create_list_get_and_delete(admin, api):
    response = api.post("/api/v1/webhooks", {**HOOK, "description": "ERP"}, format="json")
    assert response.status_code == 201, response.content
    hook = response.json()
    assert hook["secret"].startswith("whsec_") and hook["active"] is True
    assert hook["events"] == ["decision.finalized", "case.created"]
    assert Webhook.objects.get(pk=hook["id"]).secret == hook["secret"]
    listed = api.get("/api/v1/webhooks").json()["results"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]  # shown once, at creation
    got = api.get(f"/api/v1/webhooks/{hook['id']}").json()
    assert got["url"] == HOOK["url"] and "secret" not in got and got["last_status"] is None
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert_error(api.get(f"/api/v1/webhooks/{hook['id']}"), 404, "not_found")
    assert AuditEvent.objects.filter(verb__in=["webhook.created", "webhook.deleted"]).count() == 2


def test_invalid_webhooks_name_the_field(api):
    errors = assert_error(
        api.post("/api/v1/webhooks", {**HOOK, "events": ["nope"]}, format="json"), 400, "validation_error"
    )
    assert "events[0]" in errors
    errors = assert_error(
        api.post("/api/v1/webhooks", {**HOOK, "url": "ftp://x.example"}, format="json"),
        400,
        "validation_error",
    )
    assert "url" in errors
    errors = assert_error(
        api.post("/api/v1/webhooks", {**HOOK, "url": "http://127.0.0.1/x"}, format="json"),
        400,
        "validation_error",
    )
    assert "url" in errors
    assert not Webhook.objects.exists()


def test_ping_lands_in_the_delivery_log(api):
    hook = api.post("/api/v1/webhooks", HOOK, format="json").json()
    response = api.post(f"/api/v1/webhooks/{hook['id']}/ping")
    assert response.status_code == 202, response.content
    delivery = response.json()
    assert delivery["event"] == "ping" and delivery["status"] == "pending" and delivery["attempt"] == 1
    log = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["results"]
    assert [d["id"] for d in log] == [delivery["id"]]
    assert WebhookDelivery.objects.get(pk=delivery["id"]).payload["event"] == "ping"
    assert api.get(f"/api/v1/webhooks/{hook['id']}").json()["last_status"] == "pending"


def test_disable_and_enable(api):
    hook = api.post("/api/v1/webhooks", HOOK, format="json").json()
    disabled = api.post(
        f"/api/v1/webhooks/{hook['id']}/disable", {"reason": "maintenance"}, format="json"
    ).json()
    assert disabled["active"] is False and disabled["disabled_reason"] == "maintenance"
    enabled = api.post(f"/api/v1/webhooks/{hook['id']}/enable").json()
    assert enabled["active"] is True and enabled["disabled_reason"] == ""


def test_webhooks_need_the_scope_or_the_admin_role(admin, api):
    hook = api.post("/api/v1/webhooks", HOOK, format="json").json()
    reader = key_client(admin, ["workflows:read", "cases:read"])
    assert_error(reader.get("/api/v1/webhooks"), 403, "permission_denied")
    assert_error(reader.post("/api/v1/webhooks", HOOK, format="json"), 403, "permission_denied")
    assert_error(reader.delete(f"/api/v1/webhooks/{hook['id']}"), 403, "permission_denied")
    assert key_client(admin, ["webhooks:write"]).get("/api/v1/webhooks").status_code == 200
    expert = member_client(admin.organization, Role.EXPERT)
    assert_error(expert.get("/api/v1/webhooks"), 403, "permission_denied")


def test_another_organisations_webhooks_answer_404(api, other_admin):
    theirs = key_client(other_admin).post("/api/v1/webhooks", HOOK, format="json").json()
    for method, path in [
        ("get", f"/api/v1/webhooks/{theirs['id']}"),
        ("delete", f"/api/v1/webhooks/{theirs['id']}"),
        ("post", f"/api/v1/webhooks/{theirs['id']}/ping"),
        ("post", f"/api/v1/webhooks/{theirs['id']}/enable"),
        ("post", f"/api/v1/webhooks/{theirs['id']}/disable"),
        ("get", f"/api/v1/webhooks/{theirs['id']}/deliveries"),
    ]:
        assert_error(getattr(api, method)(path), 404, "not_found")
    assert api.get("/api/v1/webhooks").json()["results"] == []
    assert Webhook.objects.filter(pk=theirs["id"]).exists()
