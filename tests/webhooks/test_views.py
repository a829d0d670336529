"""The organisation admin's webhooks pages through the Django test client: who may see them, the
create form (errors named, secret shown once), delete with confirmation, test ping, enable/disable,
and the paginated delivery log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from caseloop.accounts.models import Role
from caseloop.webhooks.models import Webhook, WebhookDelivery
from caseloop.webhooks.services import webhook_create, webhook_disable
from caseloop.webhooks.signing import verify_signature
from tests.factories import make_actor, make_organization

pytestmark = pytest.mark.django_db
URL = "https://hooks.example.com/caseloop"


@pytest.fixture
def admin(client):
    actor = make_actor(make_organization("Acme Mutual"), role=Role.ADMIN)
    client.force_login(actor.user)
    return actor


def _webhook(actor, url=URL, events=("case.created",)):
    return webhook_create(actor=actor, url=url, events=list(events))[0]


@pytest.mark.parametrize("role", [Role.EXPERT, Role.REVIEWER, Role.AUDITOR])
def test_non_admins_get_403_on_every_page(client, role):
    admin = make_actor(role=Role.ADMIN)
    webhook = _webhook(admin)
    member = make_actor(admin.organization, role=role)
    client.force_login(member.user)
    pk = webhook.pk
    for method, name, args in [
        ("get", "webhook-list", []),
        ("post", "webhook-list", []),
        ("get", "webhook-detail", [pk]),
        ("get", "webhook-delete", [pk]),
        ("post", "webhook-delete", [pk]),
        ("post", "webhook-ping", [pk]),
        ("post", "webhook-enable", [pk]),
        ("post", "webhook-disable", [pk]),
    ]:
        data = {"url": URL, "events": ["case.created"]} if method == "post" else None
        response = getattr(client, method)(reverse(name, args=args), data)
        assert response.status_code == 403, (method, name)
    assert Webhook.objects.filter(pk=pk, active=True).count() == 1
    assert Webhook.objects.count() == 1 and not WebhookDelivery.objects.exists()


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("webhook-list"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_list_shows_the_organisations_webhooks_and_their_state(client, admin):
    healthy = _webhook(admin, url=URL + "/healthy")
    broken = _webhook(admin, url=URL + "/broken", events=("decision.finalized", "case.created"))
    webhook_disable(actor=admin, webhook=broken, reason="Endpoint retired by the CRM team.")
    other = _webhook(make_actor(make_organization("Elsewhere")), url="https://elsewhere.example.com/x")

    response = client.get(reverse("webhook-list"))
    page = response.content.decode()
    assert response.status_code == 200
    assert f'href="/organization/webhooks/{healthy.pk}/"' in page
    assert URL + "/broken" in page and "Endpoint retired by the CRM team." in page
    assert '<span class="badge bad" data-testid="webhook-status">disabled</span>' in page
    assert '<span class="badge ok" data-testid="webhook-status">active</span>' in page
    assert other.url not in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert "extends" not in page and "<title>Webhooks · Caseloop</title>" in page


def test_creating_shows_the_secret_once_on_the_new_webhooks_page(client, admin):
    response = client.post(
        reverse("webhook-list"),
        {"url": URL, "events": ["case.created", "decision.finalized"], "description": "CRM sync"},
    )
    webhook = Webhook.objects.get(organization=admin.organization)
    assert response.status_code == 302
    assert response["Location"] == reverse("webhook-detail", args=[webhook.pk])
    first = client.get(response["Location"]).content.decode()
    assert 'data-testid="webhook-secret"' in first and webhook.secret in first
    again = client.get(response["Location"]).content.decode()
    assert webhook.secret not in again and 'data-testid="webhook-secret"' not in again
    assert webhook.events == ["decision.finalized", "case.created"]
    assert webhook.description == "CRM sync" and webhook.created_by == admin.user


def test_bad_input_is_shown_beside_its_field_and_nothing_is_created(client, admin):
    response = client.post(reverse("webhook-list"), {"url": "ftp://files.example.com/x", "events": []})
    page = response.content.decode()
    assert response.status_code == 400
    assert "Use an http:// or https:// URL." in page
    assert "Choose at least one event." in page
    assert 'id="url-errors"' in page and 'id="events-errors"' in page
    assert 'value="ftp://files.example.com/x"' in page  # the input is kept for correction
    assert not Webhook.objects.exists()


def test_an_unknown_event_in_a_forged_form_is_refused_with_a_message(client, admin):
    response = client.post(reverse("webhook-list"), {"url": URL, "events": ["case.deleted"]})
    assert response.status_code == 400
    assert "case.deleted" in response.content.decode()
    assert not Webhook.objects.exists()


def test_another_organisations_webhook_is_404_everywhere(client, admin):
    theirs = _webhook(make_actor(make_organization("Elsewhere")))
    for method, name in [
        ("get", "webhook-detail"),
        ("get", "webhook-delete"),
        ("post", "webhook-delete"),
        ("post", "webhook-ping"),
        ("post", "webhook-disable"),
    ]:
        assert getattr(client, method)(reverse(name, args=[theirs.pk])).status_code == 404, name
    assert Webhook.objects.filter(pk=theirs.pk, active=True).exists()
    assert not WebhookDelivery.objects.exists()


def test_delete_asks_for_confirmation_then_deletes(client, admin):
    webhook = _webhook(admin)
    confirm = client.get(reverse("webhook-delete", args=[webhook.pk]))
    page = confirm.content.decode()
    assert confirm.status_code == 200 and "This cannot be undone" in page
    assert 'method="post"' in page and 'name="csrfmiddlewaretoken"' in page and 'class="danger"' in page
    assert Webhook.objects.filter(pk=webhook.pk).exists()
    response = client.post(reverse("webhook-delete", args=[webhook.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("webhook-list")
    assert not Webhook.objects.filter(pk=webhook.pk).exists()
    assert "deleted" in response.content.decode()


def test_the_ping_button_sends_a_signed_ping_and_the_log_shows_it(
    client, admin, receiver, django_capture_on_commit_callbacks
):
    webhook, secret = webhook_create(actor=admin, url=receiver.url, events=["case.created"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("webhook-ping", args=[webhook.pk]))
    assert response.status_code == 302
    (request,) = receiver.requests
    assert request.headers["Caseloop-Event"] == "ping"
    assert verify_signature(secret, request.headers["Caseloop-Signature"], request.body)
    page = client.get(reverse("webhook-detail", args=[webhook.pk])).content.decode()
    assert page.count('data-testid="delivery-row"') == 1
    assert '<span class="badge succeeded">Succeeded</span>' in page
    assert "Test ping queued" in page


def test_disable_and_enable_buttons(client, admin):
    webhook = _webhook(admin)
    client.post(reverse("webhook-disable", args=[webhook.pk]))
    webhook.refresh_from_db()
    assert not webhook.active
    page = client.get(reverse("webhook-detail", args=[webhook.pk])).content.decode()
    assert 'data-testid="disabled-reason"' in page and f"Disabled by {admin.user.username}." in page
    assert reverse("webhook-enable", args=[webhook.pk]) in page
    client.post(reverse("webhook-enable", args=[webhook.pk]))
    webhook.refresh_from_db()
    assert webhook.active and webhook.disabled_reason == ""


def test_an_automatically_disabled_webhook_shows_why(client, admin):
    webhook = _webhook(admin)
    Webhook.objects.filter(pk=webhook.pk).update(
        active=False,
        disabled_reason="Disabled automatically: 10 deliveries in a row failed. Last error: HTTP 500.",
    )
    page = client.get(reverse("webhook-detail", args=[webhook.pk])).content.decode()
    assert "10 deliveries in a row failed. Last error: HTTP 500." in page
    assert 'class="alert bad"' in page


def test_the_delivery_log_is_paginated_newest_first(client, admin):
    webhook = _webhook(admin)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            webhook=webhook, event="case.created", payload={"n": n}, status="failed", error=f"error {n}"
        )
        for n in range(30)
    )
    first = client.get(reverse("webhook-detail", args=[webhook.pk])).content.decode()
    assert first.count('data-testid="delivery-row"') == 25
    assert "error 29" in first and "error 4<" not in first
    assert 'rel="next"' in first
    second = client.get(reverse("webhook-detail", args=[webhook.pk]) + "?page=2").content.decode()
    assert second.count('data-testid="delivery-row"') == 5
    assert "error 0<" in second and 'rel="prev"' in second
    # A page number past the end shows the last page rather than failing.
    assert client.get(reverse("webhook-detail", args=[webhook.pk]) + "?page=99").status_code == 200
