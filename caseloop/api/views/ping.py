"""An authenticated no-op: checks the credential, answers, does nothing else (the baseline of
bench/api.py, and a cheap way for an integration to test its key)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from caseloop.api.base import ApiView


class PingView(ApiView):
    @extend_schema(
        tags=["meta"],
        operation_id="ping",
        responses=inline_serializer(
            name="Pong",
            fields={
                "ok": serializers.BooleanField(),
                "organization": serializers.CharField(help_text="The slug of the credential's organisation."),
            },
        ),
    )
    def get(self, request):
        return Response({"ok": True, "organization": self.actor.organization.slug})
