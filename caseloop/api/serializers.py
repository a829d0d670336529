"""What the API returns: one read-only serializer per resource, shared by the operations.

Input serializers live next to the operation that reads them (``InputSerializer`` in each view).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from caseloop.audit.chain import HASHED_FIELDS
from caseloop.audit.models import AuditEvent
from caseloop.webhooks.models import Webhook, WebhookDelivery
from training.models import EvaluationReport, Policy, PolicyVersion, TrainingJob, TrainingMetric
from workflows.models import (
    Case,
    Decision,
    DecisionStatus,
    Review,
    Rubric,
    RubricVersion,
    Workflow,
    WorkflowVersion,
)

# A decision in one of these has been through its life: nothing will change it any more
# (approved and corrected ones may still be executed, when the workflow waits for confirmation).
OPEN_DECISION_STATUSES = frozenset({DecisionStatus.PROPOSED, DecisionStatus.PENDING_REVIEW})


class ErrorSerializer(serializers.Serializer):
    """Every 4xx answer."""

    type = serializers.CharField(help_text="validation_error, not_found, permission_denied, conflict, …")
    detail = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field path -> messages; list items by index: cases[3].fields.amount_claimed.",
    )


class WorkflowVersionSerializer(serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="workflow_id")

    class Meta:
        model = WorkflowVersion
        fields = ["workflow", "number", "spec", "note", "created_at"]


class WorkflowSerializer(serializers.ModelSerializer):
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Workflow
        fields = ["id", "slug", "name", "description", "pack", "latest_version", "created_at"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_latest_version(self, obj: Workflow) -> int | None:
        number = getattr(obj, "latest_number", None)
        if number is None and not hasattr(obj, "latest_number"):
            version = obj.latest_version
            number = version.number if version else None
        return number


class RubricVersionSerializer(serializers.ModelSerializer):
    rubric = serializers.IntegerField(source="rubric_id")

    class Meta:
        model = RubricVersion
        fields = ["rubric", "number", "definition", "note", "frozen", "created_at"]


class RubricSerializer(serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="workflow_id")
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Rubric
        fields = ["id", "workflow", "name", "latest_version", "created_at"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_latest_version(self, obj: Rubric) -> int | None:
        number = getattr(obj, "latest_number", None)
        if number is None and not hasattr(obj, "latest_number"):
            version = obj.latest_version
            number = version.number if version else None
        return number


class DecisionSerializer(serializers.ModelSerializer):
    case = serializers.IntegerField(source="case_id")
    run = serializers.IntegerField(source="run_id")
    policy_version = serializers.IntegerField(source="policy_version_id")
    final = serializers.SerializerMethodField(help_text="True once review is over (or was never needed).")

    class Meta:
        model = Decision
        fields = [
            "id",
            "case",
            "run",
            "policy_version",
            "name",
            "arguments",
            "explanation",
            "confidence",
            "status",
            "final",
            "outcome",
            "routing",
            "risk_level",
            "approvals_required",
            "review_round",
            "review_outcome",
            "review_requested_at",
            "claim_expires_at",
            "reviewed_at",
            "executed_at",
            "created_at",
            "updated_at",
        ]

    def get_final(self, obj: Decision) -> bool:
        return obj.status not in OPEN_DECISION_STATUSES


class CaseSerializer(serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="workflow_id")
    workflow_version = serializers.IntegerField(source="workflow_version.number")
    decision = serializers.SerializerMethodField(
        help_text="The production policy's decision on a live case, once it is decided."
    )

    class Meta:
        model = Case
        fields = [
            "id",
            "workflow",
            "workflow_version",
            "external_id",
            "fields",
            "expected",
            "split",
            "source",
            "status",
            "difficulty",
            "created_at",
            "decision",
        ]

    @extend_schema_field(DecisionSerializer(allow_null=True))
    def get_decision(self, obj: Case):
        decisions = getattr(obj, "production_decisions", None)
        if decisions is None:
            decisions = list(
                obj.decisions.exclude(status=DecisionStatus.SHADOW).order_by("-created_at", "-id")[:1]
            )
        return DecisionSerializer(decisions[0]).data if decisions else None


class ReviewSerializer(serializers.ModelSerializer):
    decision = serializers.IntegerField(source="decision_id")
    reviewer = serializers.CharField(source="reviewer.get_username")
    labelled_case = serializers.IntegerField(source="labelled_case_id", allow_null=True)

    class Meta:
        model = Review
        fields = [
            "id",
            "decision",
            "reviewer",
            "verdict",
            "round",
            "corrected_decision",
            "corrected_arguments",
            "reason",
            "comment",
            "labelled_case",
            "created_at",
        ]


class PolicyVersionSerializer(serializers.ModelSerializer):
    policy = serializers.IntegerField(source="policy_id")

    class Meta:
        model = PolicyVersion
        fields = [
            "id",
            "policy",
            "number",
            "stage",
            "config",
            "artifact_hash",
            "metrics",
            "created_at",
            "promoted_at",
        ]


class PolicySerializer(serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="workflow_id")

    class Meta:
        model = Policy
        fields = ["id", "workflow", "name", "kind", "created_at"]


class EvaluationSerializer(serializers.ModelSerializer):
    policy_version = serializers.IntegerField(source="policy_version_id")
    rubric_version = serializers.IntegerField(source="rubric_version_id")
    production_version = serializers.IntegerField(source="production_version_id", allow_null=True)

    class Meta:
        model = EvaluationReport
        fields = [
            "id",
            "policy_version",
            "split",
            "rubric_version",
            "n_cases",
            "metrics",
            "baselines",
            "production",
            "production_version",
            "created_at",
        ]


class TrainingJobSerializer(serializers.ModelSerializer):
    workflow = serializers.IntegerField(source="workflow_id")
    policy = serializers.IntegerField(source="policy_id")
    rubric_version = serializers.IntegerField(source="rubric_version_id")
    result_version = serializers.IntegerField(source="result_version_id", allow_null=True)

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "workflow",
            "policy",
            "rubric_version",
            "algorithm",
            "config",
            "status",
            "progress",
            "update",
            "total_updates",
            "checkpoint_update",
            "attempts",
            "cancel_requested",
            "error",
            "result_version",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]


class TrainingMetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingMetric
        fields = ["update", "env_steps", "values", "created_at"]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        # The hashed fields (the organisation is implied by the key) and the chain links.
        fields = ["id", *(name for name in HASHED_FIELDS if name != "organization_id"), "prev_hash", "hash"]


class ChainHeadSerializer(serializers.Serializer):
    organization = serializers.CharField()
    sequence = serializers.IntegerField()
    hash = serializers.CharField()


class ChainBreakSerializer(serializers.Serializer):
    sequence = serializers.IntegerField(allow_null=True)
    id = serializers.IntegerField(allow_null=True)
    expected_hash = serializers.CharField(allow_null=True)
    found_hash = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


class AuditVerifySerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Events whose hash was recomputed and matched.")
    head = ChainHeadSerializer(allow_null=True, help_text="The verified chain head (sequence and hash).")
    first_break = ChainBreakSerializer(allow_null=True)


class WebhookSerializer(serializers.ModelSerializer):
    last_status = serializers.CharField(
        allow_null=True, read_only=True, default=None, help_text="The latest attempt's status."
    )
    last_attempt_at = serializers.DateTimeField(allow_null=True, read_only=True, default=None)

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "description",
            "active",
            "disabled_reason",
            "disabled_at",
            "consecutive_failures",
            "created_at",
            "last_status",
            "last_attempt_at",
        ]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="Signs every delivery (HMAC-SHA256). Shown only now.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    webhook = serializers.IntegerField(source="webhook_id")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook",
            "event",
            "event_id",
            "delivery_id",
            "attempt",
            "status",
            "response_status",
            "response_body",
            "error",
            "duration_ms",
            "next_attempt_at",
            "started_at",
            "finished_at",
            "created_at",
            "payload",
        ]
