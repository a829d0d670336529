"""Webhook services and selectors: validation naming the field, roles, organisation isolation,
auditing, and emitting that is cheap without subscribers and never breaks the emitting change."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.http import Http404

from caseloop.accounts.models import Role
from caseloop.accounts.permissions import Actor
from caseloop.accounts.services import api_key_create
from caseloop.audit.models import AuditEvent
from caseloop.audit.selectors import audit_verify
from caseloop.webhooks.models import EVENTS, DeliveryStatus, Webhook, WebhookDelivery
from caseloop.webhooks.selectors import WebhookNotFound, webhook_deliveries, webhook_get, webhook_list
from caseloop.webhooks.services import (
    webhook_create,
    webhook_delete,
    webhook_disable,
    webhook_enable,
    webhook_ping,
    webhooks_emit,
)
from tests.factories import make_actor, make_organization

pytestmark = pytest.mark.django_db
URL = "https://hooks.example.com/caseloop"


def _verbs(actor: Actor) -> list[str]:
    return list(
        AuditEvent.objects.filter(organization=actor.organization, verb__startswith="webhook.")
        .order_by("sequence")
        .values_list("verb", flat=True)
    )


# --------------------------------------------------------------------------- create and validation


def test_create_returns_the_secret_once_and_stores_what_was_asked():
    actor = make_actor(role=Role.ADMIN)
    webhook, secret = webhook_create(
        actor=actor, url=f"  {URL}  ", events=["policy_version.promoted", "case.created"], description=" CRM "
    )
    assert secret.startswith("whsec_") and len(secret) > 40
    webhook.refresh_from_db()
    assert webhook.secret == secret
    assert webhook.url == URL
    assert webhook.events == ["case.created", "policy_version.promoted"]  # known order, no duplicates
    assert webhook.description == "CRM"
    assert webhook.active and webhook.consecutive_failures == 0
    assert webhook.created_by == actor.user and webhook.organization == actor.organization
    _, other_secret = webhook_create(actor=actor, url=URL, events=["case.created"])
    assert other_secret != secret


def test_create_is_audited_without_the_secret_or_the_query_string():
    actor = make_actor()
    webhook, secret = webhook_create(actor=actor, url=f"{URL}?token=s3cret", events=["case.created"])
    event = AuditEvent.objects.get(verb="webhook.created", subject_id=str(webhook.pk))
    assert event.payload["url"] == URL
    assert "s3cret" not in str(event.payload) and secret not in str(event.payload)
    assert audit_verify(organization=actor.organization).ok


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Give the URL"),
        ("ftp://files.example.com/x", "http:// or https://"),
        ("hooks.example.com/x", "http:// or https://"),
        ("https://", "not a valid"),
        ("https://exa mple.com/", "not a valid"),
        ("https://example.com/" + "a" * 2000, "At most 2000"),
        (None, "Give the URL"),
    ],
)
def test_bad_urls_are_refused_naming_the_url(url, message):
    with pytest.raises(ValidationError) as exc:
        webhook_create(actor=make_actor(), url=url, events=["case.created"])
    assert list(exc.value.message_dict) == ["url"]
    assert message in exc.value.message_dict["url"][0]


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "at least one"),
        (["case.deleted"], "Unknown events: case.deleted"),
        (["case.created", "ping"], "Unknown events: ping"),
        ("case.created", "a list"),
        ([1], "strings"),
        (None, "a list"),
    ],
)
def test_bad_event_lists_are_refused_naming_the_events(events, message):
    with pytest.raises(ValidationError) as exc:
        webhook_create(actor=make_actor(), url=URL, events=events)
    assert list(exc.value.message_dict) == ["events"]
    assert message in exc.value.message_dict["events"][0]


def test_every_problem_is_named_at_once_and_nothing_is_written():
    actor = make_actor()
    with pytest.raises(ValidationError) as exc:
        webhook_create(actor=actor, url="mailto:x@example.com", events=["nope"], description="d" * 201)
    assert set(exc.value.message_dict) == {"url", "events", "description"}
    assert not Webhook.objects.exists()
    assert _verbs(actor) == []


def test_private_addresses_are_refused_when_the_setting_is_off(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    actor = make_actor()
    for url in (
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://169.254.169.254/",
    ):
        with pytest.raises(ValidationError) as exc:
            webhook_create(actor=actor, url=url, events=["case.created"])
        assert "Private" in exc.value.message_dict["url"][0], url
    webhook, _ = webhook_create(actor=actor, url=URL, events=["case.created"])
    assert webhook.pk


def test_the_events_constant_lists_the_four_business_events():
    assert set(EVENTS) == {
        "decision.finalized",
        "case.created",
        "training_job.finished",
        "policy_version.promoted",
    }


# --------------------------------------------------------------------------- roles and isolation


@pytest.mark.parametrize("role", [Role.EXPERT, Role.REVIEWER, Role.AUDITOR])
def test_only_admins_manage_webhooks(role):
    admin = make_actor(role=Role.ADMIN)
    webhook, _ = webhook_create(actor=admin, url=URL, events=["case.created"])
    member = make_actor(admin.organization, role=role)
    with pytest.raises(PermissionDenied):
        webhook_create(actor=member, url=URL, events=["case.created"])
    with pytest.raises(PermissionDenied):
        webhook_list(actor=member)
    with pytest.raises(PermissionDenied):
        webhook_get(actor=member, webhook_id=webhook.pk)
    with pytest.raises(PermissionDenied):
        webhook_ping(actor=member, webhook=webhook)
    with pytest.raises(PermissionDenied):
        webhook_delete(actor=member, webhook=webhook)
    with pytest.raises(PermissionDenied):
        webhook_deliveries(actor=member, webhook=webhook)
    assert Webhook.objects.filter(pk=webhook.pk).exists()


def test_api_keys_need_the_webhooks_write_scope():
    admin = make_actor()
    writer, _ = api_key_create(actor=admin, name="ops", scopes=["webhooks:write"])
    reader, _ = api_key_create(actor=admin, name="reader", scopes=["cases:read"])
    as_writer = Actor(organization=admin.organization, api_key=writer)
    webhook, _ = webhook_create(actor=as_writer, url=URL, events=["case.created"])
    assert webhook.created_by is None
    with pytest.raises(PermissionDenied):
        webhook_list(actor=Actor(organization=admin.organization, api_key=reader))


def test_another_organisations_webhooks_are_invisible_and_untouchable():
    mine, theirs = make_actor(), make_actor(make_organization("Elsewhere"))
    their_hook, _ = webhook_create(actor=theirs, url=URL, events=["case.created"])
    my_hook, _ = webhook_create(actor=mine, url=URL, events=["case.created"])
    assert list(webhook_list(actor=mine)) == [my_hook]
    with pytest.raises(WebhookNotFound) as exc:
        webhook_get(actor=mine, webhook_id=their_hook.pk)
    assert isinstance(exc.value, Webhook.DoesNotExist) and isinstance(exc.value, Http404)
    for bad in ("abc", None, 10**9):
        with pytest.raises(Webhook.DoesNotExist):
            webhook_get(actor=mine, webhook_id=bad)
    for service in (webhook_delete, webhook_ping, webhook_enable, webhook_disable):
        with pytest.raises(PermissionDenied):
            service(actor=mine, webhook=their_hook)
    with pytest.raises(PermissionDenied):
        webhook_deliveries(actor=mine, webhook=their_hook)
    assert Webhook.objects.filter(pk=their_hook.pk, active=True).exists()
    assert webhook_get(actor=mine, webhook_id=str(my_hook.pk)) == my_hook


def test_events_of_one_organisation_never_reach_another_organisations_webhooks():
    mine, theirs = make_actor(), make_actor(make_organization("Elsewhere"))
    their_hook, _ = webhook_create(actor=theirs, url=URL, events=list(EVENTS))
    webhooks_emit(organization=mine.organization, event="case.created", payload={"case": {"id": 1}})
    assert not WebhookDelivery.objects.filter(webhook=their_hook).exists()


# --------------------------------------------------------------------------- life of a webhook


def test_disable_enable_delete_and_ping_are_audited_in_order():
    actor = make_actor()
    webhook, _ = webhook_create(actor=actor, url=URL, events=["case.created"])
    webhook_disable(actor=actor, webhook=webhook, reason="maintenance window")
    webhook.refresh_from_db()
    assert not webhook.active and webhook.disabled_reason == "maintenance window"
    webhook_disable(actor=actor, webhook=webhook)  # already disabled: nothing new
    webhook_ping(actor=actor, webhook=webhook)
    webhook_enable(actor=actor, webhook=webhook)
    webhook.refresh_from_db()
    assert webhook.active and webhook.disabled_reason == "" and webhook.disabled_at is None
    webhook_delete(actor=actor, webhook=webhook)
    assert not Webhook.objects.filter(pk=webhook.pk).exists()
    assert not WebhookDelivery.objects.filter(webhook_id=webhook.pk).exists()
    assert _verbs(actor) == [
        "webhook.created",
        "webhook.disabled",
        "webhook.pinged",
        "webhook.enabled",
        "webhook.deleted",
    ]
    assert audit_verify(organization=actor.organization).ok


def test_ping_writes_one_pending_attempt_even_for_a_disabled_webhook():
    actor = make_actor()
    webhook, _ = webhook_create(actor=actor, url=URL, events=["decision.finalized"])
    webhook_disable(actor=actor, webhook=webhook)
    delivery = webhook_ping(actor=actor, webhook=webhook)
    assert delivery.event == "ping" and delivery.attempt == 1 and delivery.status == DeliveryStatus.PENDING
    assert delivery.payload["event"] == "ping"
    assert delivery.payload["data"]["webhook"]["id"] == webhook.pk
    assert delivery.payload["organization"] == {"id": actor.organization.pk, "slug": actor.organization.slug}
    assert list(webhook_deliveries(actor=actor, webhook=webhook)) == [delivery]


# --------------------------------------------------------------------------- emitting


def test_emitting_without_subscribers_costs_one_query_and_never_builds_the_payload(django_assert_num_queries):
    actor = make_actor()
    webhook_create(actor=actor, url=URL, events=["training_job.finished"])  # another event
    disabled, _ = webhook_create(actor=actor, url=URL, events=["case.created"])
    webhook_disable(actor=actor, webhook=disabled)

    def payload():
        raise AssertionError("built although nobody subscribes")

    with django_assert_num_queries(1):
        assert webhooks_emit(organization=actor.organization, event="case.created", payload=payload) == []
    assert not WebhookDelivery.objects.exists()


def test_emitting_writes_one_pending_attempt_per_subscribed_active_webhook():
    actor = make_actor()
    first, _ = webhook_create(actor=actor, url=URL, events=["case.created"])
    second, _ = webhook_create(actor=actor, url=URL + "/2", events=list(EVENTS))
    webhook_create(actor=actor, url=URL + "/3", events=["decision.finalized"])
    deliveries = webhooks_emit(
        organization=actor.organization, event="case.created", payload={"case": {"id": 5}}
    )
    assert sorted(d.webhook_id for d in deliveries) == sorted([first.pk, second.pk])
    assert len({d.event_id for d in deliveries}) == 1  # one event ...
    assert len({d.delivery_id for d in deliveries}) == 2  # ... delivered twice
    stored = WebhookDelivery.objects.get(webhook=first)
    assert stored.status == DeliveryStatus.PENDING and stored.attempt == 1
    assert stored.payload["event"] == "case.created"
    assert stored.payload["id"] == str(stored.event_id)
    assert stored.payload["data"] == {"case": {"id": 5}}


def test_an_unknown_event_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown webhook event"):
        webhooks_emit(organization=make_organization(), event="case.deleted", payload={})


def test_a_failing_payload_or_database_error_leaves_the_emitting_transaction_intact():
    actor = make_actor()
    webhook_create(actor=actor, url=URL, events=["case.created"])
    with transaction.atomic():
        organization = make_organization("Made in the same transaction")

        def broken():
            raise KeyError("a bug in a payload builder")

        assert webhooks_emit(organization=actor.organization, event="case.created", payload=broken) == []
        if connection.vendor == "postgresql":
            # jsonb refuses NUL characters: a real database error inside the emit's savepoint.
            assert (
                webhooks_emit(organization=actor.organization, event="case.created", payload={"x": "\x00"})
                == []
            )
        organization.name = "Still writable"
        organization.save()
    organization.refresh_from_db()
    assert organization.name == "Still writable"
    assert not WebhookDelivery.objects.exists()


def test_a_rolled_back_change_sends_nothing():
    actor = make_actor()
    webhook_create(actor=actor, url=URL, events=["case.created"])
    with pytest.raises(RuntimeError), transaction.atomic():
        webhooks_emit(organization=actor.organization, event="case.created", payload={"case": {"id": 1}})
        raise RuntimeError("the business change failed")
    assert not WebhookDelivery.objects.exists()
