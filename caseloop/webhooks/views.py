"""The organisation admin's webhooks pages: list and create, detail with the delivery log, delete,
test ping, enable and disable. Thin: ``role_required`` checks the role, the selectors scope every
read to the organisation, the services do the rest."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods, require_POST

from caseloop.accounts.decorators import role_required
from caseloop.webhooks import selectors, services
from caseloop.webhooks.forms import WebhookCreateForm
from caseloop.webhooks.models import EVENT_DESCRIPTIONS
from caseloop.webhooks.signing import SIGNATURE_HEADER

# The new secret travels to the detail page in the session and is removed when shown: once.
NEW_SECRET_KEY = "webhooks.new_secret"
DELIVERIES_PER_PAGE = 25


def _list_page(request, form: WebhookCreateForm, *, status: int = 200):
    return render(
        request,
        "webhooks/list.html",
        {
            "webhooks": selectors.webhook_list(actor=request.actor),
            "form": form,
            "events": EVENT_DESCRIPTIONS,
        },
        status=status,
    )


@role_required("webhook.manage")
@require_http_methods(["GET", "POST"])
def webhook_list(request):
    if request.method == "GET":
        return _list_page(request, WebhookCreateForm())
    form = WebhookCreateForm(request.POST)
    if form.is_valid():
        try:
            webhook, secret = services.webhook_create(
                actor=request.actor,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
            )
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            request.session[NEW_SECRET_KEY] = {"webhook": webhook.pk, "secret": secret}
            return redirect("webhook-detail", webhook_id=webhook.pk)
    return _list_page(request, form, status=400)


@role_required("webhook.manage")
def webhook_detail(request, webhook_id: int):
    webhook = selectors.webhook_get(actor=request.actor, webhook_id=webhook_id)
    new = request.session.get(NEW_SECRET_KEY)
    secret = None
    if new and new.get("webhook") == webhook.pk:
        secret = new["secret"]
        del request.session[NEW_SECRET_KEY]
    page = Paginator(
        selectors.webhook_deliveries(actor=request.actor, webhook=webhook), DELIVERIES_PER_PAGE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/detail.html",
        {
            "webhook": webhook,
            "secret": secret,
            "page": page,
            "signature_header": SIGNATURE_HEADER,
            "events": EVENT_DESCRIPTIONS,
        },
    )


@role_required("webhook.manage")
@require_http_methods(["GET", "POST"])
def webhook_delete(request, webhook_id: int):
    webhook = selectors.webhook_get(actor=request.actor, webhook_id=webhook_id)
    if request.method == "GET":
        return render(request, "webhooks/confirm_delete.html", {"webhook": webhook})
    services.webhook_delete(actor=request.actor, webhook=webhook)
    messages.success(request, f"Webhook to {webhook.url} deleted, with its delivery log.")
    return redirect("webhook-list")


@role_required("webhook.manage")
@require_POST
def webhook_ping(request, webhook_id: int):
    webhook = selectors.webhook_get(actor=request.actor, webhook_id=webhook_id)
    services.webhook_ping(actor=request.actor, webhook=webhook)
    messages.success(request, "Test ping queued: its result appears in the delivery log below.")
    return redirect("webhook-detail", webhook_id=webhook.pk)


@role_required("webhook.manage")
@require_POST
def webhook_enable(request, webhook_id: int):
    webhook = selectors.webhook_get(actor=request.actor, webhook_id=webhook_id)
    services.webhook_enable(actor=request.actor, webhook=webhook)
    messages.success(request, "Webhook enabled: new events will be delivered.")
    return redirect("webhook-detail", webhook_id=webhook.pk)


@role_required("webhook.manage")
@require_POST
def webhook_disable(request, webhook_id: int):
    webhook = selectors.webhook_get(actor=request.actor, webhook_id=webhook_id)
    services.webhook_disable(actor=request.actor, webhook=webhook, reason=request.POST.get("reason", ""))
    messages.success(request, "Webhook disabled: nothing is sent until it is enabled again.")
    return redirect("webhook-detail", webhook_id=webhook.pk)


urlpatterns = [
    path("", webhook_list, name="webhook-list"),
    path("<int:webhook_id>/", webhook_detail, name="webhook-detail"),
    path("<int:webhook_id>/delete/", webhook_delete, name="webhook-delete"),
    path("<int:webhook_id>/ping/", webhook_ping, name="webhook-ping"),
    path("<int:webhook_id>/enable/", webhook_enable, name="webhook-enable"),
    path("<int:webhook_id>/disable/", webhook_disable, name="webhook-disable"),
]
