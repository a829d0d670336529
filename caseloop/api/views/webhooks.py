"""Webhooks: create (the signing secret is returned once), list, get, delete, enable and disable,
a test ping, and the delivery log (``caseloop.webhooks`` services and selectors)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from caseloop.api.base import ApiView, created, valid_body
from caseloop.api.schema import PAGE_PARAMETERS, paginated
from caseloop.api.serializers import (
    WebhookCreatedSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
)
from caseloop.webhooks import selectors as webhook_selectors
from caseloop.webhooks import services as webhook_services
from caseloop.webhooks.models import EVENTS, Webhook

TAG = ["webhooks"]


def webhook_of(view: ApiView, webhook_id: int) -> Webhook:
    return webhook_selectors.webhook_get(actor=view.actor, webhook_id=webhook_id)


class WebhooksView(ApiView):
    permissions = {"GET": "webhook.manage", "POST": "webhook.manage"}

    class CreateInput(serializers.Serializer):
        url = serializers.CharField(max_length=2000, help_text="The http(s) URL that receives the events.")
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=list(EVENTS)), min_length=1, help_text="Events to receive."
        )
        description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    @extend_schema(
        tags=TAG,
        operation_id="webhooks_list",
        parameters=PAGE_PARAMETERS,
        responses=paginated(WebhookSerializer),
    )
    def get(self, request):
        return self.paginate(webhook_selectors.webhook_list(actor=self.actor), WebhookSerializer)

    @extend_schema(
        tags=TAG,
        operation_id="webhooks_create",
        request=CreateInput,
        responses={201: WebhookCreatedSerializer},
        description="Subscribe a URL to events. The response holds the signing secret, shown "
        "only this once; verify the Caseloop-Signature header of each delivery with it.",
    )
    def post(self, request):
        data = valid_body(self.CreateInput, request)
        webhook, secret = webhook_services.webhook_create(actor=self.actor, **data)
        webhook.secret = secret
        return created(WebhookCreatedSerializer(webhook).data, f"/api/v1/webhooks/{webhook.pk}")


class WebhookDetailView(ApiView):
    permissions = {"GET": "webhook.manage", "DELETE": "webhook.manage"}

    @extend_schema(tags=TAG, operation_id="webhooks_retrieve", responses=WebhookSerializer)
    def get(self, request, webhook_id: int):
        webhook = webhook_selectors.webhook_list(actor=self.actor).filter(pk=webhook_id).first()
        if webhook is None:
            webhook_of(self, webhook_id)  # raises the selector's 404
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(
        tags=TAG,
        operation_id="webhooks_delete",
        responses={204: OpenApiResponse(description="Deleted.")},
        description="Delete the webhook and its delivery log; queued attempts are not sent.",
    )
    def delete(self, request, webhook_id: int):
        webhook_services.webhook_delete(actor=self.actor, webhook=webhook_of(self, webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookPingView(ApiView):
    permissions = {"POST": "webhook.manage"}

    @extend_schema(
        tags=TAG,
        operation_id="webhooks_ping",
        request=None,
        responses={202: WebhookDeliverySerializer},
        description="Queue a signed test delivery (event ping): one attempt, sent even to a "
        "disabled webhook. Its result appears in the delivery log.",
    )
    def post(self, request, webhook_id: int):
        delivery = webhook_services.webhook_ping(actor=self.actor, webhook=webhook_of(self, webhook_id))
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookEnableView(ApiView):
    permissions = {"POST": "webhook.manage"}

    @extend_schema(
        tags=TAG,
        operation_id="webhooks_enable",
        request=None,
        responses=WebhookSerializer,
        description="Turn a disabled webhook back on, its failure count reset.",
    )
    def post(self, request, webhook_id: int):
        webhook = webhook_services.webhook_enable(actor=self.actor, webhook=webhook_of(self, webhook_id))
        return Response(WebhookSerializer(webhook).data)


class WebhookDisableView(ApiView):
    permissions = {"POST": "webhook.manage"}

    class Input(serializers.Serializer):
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    @extend_schema(
        tags=TAG,
        operation_id="webhooks_disable",
        request=Input,
        responses=WebhookSerializer,
        description="Stop sending to the webhook until it is enabled again.",
    )
    def post(self, request, webhook_id: int):
        data = valid_body(self.Input, request)
        webhook = webhook_services.webhook_disable(
            actor=self.actor, webhook=webhook_of(self, webhook_id), reason=data["reason"]
        )
        return Response(WebhookSerializer(webhook).data)


class WebhookDeliveriesView(ApiView):
    permissions = {"GET": "webhook.manage"}

    @extend_schema(
        tags=TAG,
        operation_id="webhooks_deliveries",
        parameters=PAGE_PARAMETERS,
        responses=paginated(WebhookDeliverySerializer),
        description="The delivery log, one row per attempt, newest first.",
    )
    def get(self, request, webhook_id: int):
        deliveries = webhook_selectors.webhook_deliveries(
            actor=self.actor, webhook=webhook_of(self, webhook_id)
        )
        return self.paginate(deliveries, WebhookDeliverySerializer)
