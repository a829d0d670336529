"""The audit trail: events (cursor-paginated, filtered), the streaming JSONL export with its chain
head, and verification of the organisation's chain."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from caseloop.api.base import ApiView, valid_query
from caseloop.api.schema import PAGE_PARAMETERS, paginated
from caseloop.api.serializers import AuditEventSerializer, AuditVerifySerializer
from caseloop.audit.selectors import audit_event_list, audit_export_lines, audit_verify

TAG = ["audit"]


class AuditEventsView(ApiView):
    permissions = {"GET": "audit.view"}

    class ListQuery(serializers.Serializer):
        verb = serializers.CharField(max_length=64, required=False, help_text="e.g. case.created")
        subject_type = serializers.CharField(max_length=64, required=False, help_text="e.g. workflows.case")
        subject_id = serializers.CharField(max_length=64, required=False)
        since = serializers.DateTimeField(required=False, help_text="Events at or after this time.")
        until = serializers.DateTimeField(required=False, help_text="Events before this time.")

    @extend_schema(
        tags=TAG,
        operation_id="audit_events_list",
        parameters=[ListQuery, *PAGE_PARAMETERS],
        responses=paginated(AuditEventSerializer),
        description="The organisation's events, newest first (by sequence), cursor-paginated.",
    )
    def get(self, request):
        query = valid_query(self.ListQuery, request)
        events = audit_event_list(actor=self.actor, **query)
        return self.paginate(events, AuditEventSerializer, ordering="-sequence")


class AuditExportView(ApiView):
    permissions = {"GET": "audit.view"}

    @extend_schema(
        tags=TAG,
        operation_id="audit_export",
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                description='One JSON event a line in sequence order, then a {"chain_head": …} line. '
                "Re-verify it with caseloop.audit.export.verify_export.",
            )
        },
    )
    def get(self, request):
        lines = audit_export_lines(organization=self.actor.organization)
        response = StreamingHttpResponse((f"{line}\n" for line in lines), content_type="application/x-ndjson")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        filename = f"audit-{self.actor.organization.slug}-{stamp}.jsonl"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class AuditVerifyView(ApiView):
    permissions = {"GET": "audit.view"}

    @extend_schema(
        tags=TAG,
        operation_id="audit_verify",
        responses=AuditVerifySerializer,
        description="Recompute the organisation's hash chain; answers the verified chain head, "
        "or the first broken link.",
    )
    def get(self, request):
        result = audit_verify(organization=self.actor.organization)
        head = result.head
        broken = result.first_break
        return Response(
            {
                "ok": result.ok,
                "checked": result.checked,
                "head": {"organization": head.organization, "sequence": head.sequence, "hash": head.hash}
                if head
                else None,
                "first_break": {
                    "sequence": broken.sequence,
                    "id": broken.id,
                    "expected_hash": broken.expected_hash,
                    "found_hash": broken.found_hash,
                    "reason": broken.reason,
                }
                if broken
                else None,
            }
        )
