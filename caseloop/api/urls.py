"""The versioned REST API (``/api/v1/``) for integrations, its OpenAPI schema and documentation.

Included under ``api/`` by the root URLconf. Any other path under ``/api/`` answers 404 in the
API's error shape.
"""

from __future__ import annotations

from django.urls import include, path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from caseloop.api.errors import api_not_found
from caseloop.api.views import audit, cases, decisions, ping, policies, training, webhooks, workflows


class IdConverter:
    """A primary key: digits the database's bigint can hold (longer ones answer 404, not 500)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class NumberConverter(IdConverter):
    """A version number (a positive integer column)."""

    regex = "[0-9]{1,9}"


register_converter(IdConverter, "id")
register_converter(NumberConverter, "number")

v1 = [
    path("ping", ping.PingView.as_view(), name="ping"),
    # workflows and rubrics
    path("workflows", workflows.WorkflowsView.as_view(), name="workflows"),
    path("workflows/<id:workflow_id>", workflows.WorkflowDetailView.as_view(), name="workflow"),
    path(
        "workflows/<id:workflow_id>/versions",
        workflows.WorkflowVersionsView.as_view(),
        name="workflow-versions",
    ),
    path(
        "workflows/<id:workflow_id>/versions/<number:number>",
        workflows.WorkflowVersionDetailView.as_view(),
        name="workflow-version",
    ),
    path(
        "workflows/<id:workflow_id>/rubric-preview",
        workflows.RubricPreviewView.as_view(),
        name="rubric-preview",
    ),
    path("rubrics", workflows.RubricsView.as_view(), name="rubrics"),
    path("rubrics/<id:rubric_id>", workflows.RubricDetailView.as_view(), name="rubric"),
    path("rubrics/<id:rubric_id>/versions", workflows.RubricVersionsView.as_view(), name="rubric-versions"),
    path(
        "rubrics/<id:rubric_id>/versions/<number:number>",
        workflows.RubricVersionDetailView.as_view(),
        name="rubric-version",
    ),
    path(
        "rubrics/<id:rubric_id>/versions/<number:number>/red-team",
        workflows.RubricRedTeamView.as_view(),
        name="rubric-version-red-team",
    ),
    # cases and decisions
    path("cases", cases.CasesView.as_view(), name="cases"),
    path("cases/bulk", cases.CaseBulkView.as_view(), name="cases-bulk"),
    path("cases/<id:case_id>", cases.CaseDetailView.as_view(), name="case"),
    path("decisions", decisions.DecisionsView.as_view(), name="decisions"),
    path("decisions/<id:decision_id>", decisions.DecisionDetailView.as_view(), name="decision"),
    path(
        "decisions/<id:decision_id>/execute", decisions.DecisionExecuteView.as_view(), name="decision-execute"
    ),
    # reviews
    path("reviews/claim", decisions.ReviewClaimView.as_view(), name="reviews-claim"),
    path(
        "decisions/<id:decision_id>/reviews", decisions.DecisionReviewsView.as_view(), name="decision-reviews"
    ),
    path(
        "decisions/<id:decision_id>/release", decisions.DecisionReleaseView.as_view(), name="decision-release"
    ),
    # policies and training
    path("policies", policies.PoliciesView.as_view(), name="policies"),
    path("policies/<id:policy_id>", policies.PolicyDetailView.as_view(), name="policy"),
    path("policies/<id:policy_id>/versions", policies.PolicyVersionsView.as_view(), name="policy-versions"),
    path(
        "policy-versions/<id:version_id>", policies.PolicyVersionDetailView.as_view(), name="policy-version"
    ),
    path(
        "policy-versions/<id:version_id>/evaluations",
        policies.PolicyVersionEvaluationsView.as_view(),
        name="policy-version-evaluations",
    ),
    path(
        "policy-versions/<id:version_id>/promote",
        policies.PolicyVersionPromoteView.as_view(),
        name="policy-version-promote",
    ),
    path("training-jobs", training.TrainingJobsView.as_view(), name="training-jobs"),
    path("training-jobs/<id:job_id>", training.TrainingJobDetailView.as_view(), name="training-job"),
    path(
        "training-jobs/<id:job_id>/metrics",
        training.TrainingJobMetricsView.as_view(),
        name="training-job-metrics",
    ),
    path(
        "training-jobs/<id:job_id>/cancel",
        training.TrainingJobCancelView.as_view(),
        name="training-job-cancel",
    ),
    # audit
    path("audit/events", audit.AuditEventsView.as_view(), name="audit-events"),
    path("audit/export", audit.AuditExportView.as_view(), name="audit-export"),
    path("audit/verify", audit.AuditVerifyView.as_view(), name="audit-verify"),
    # webhooks
    path("webhooks", webhooks.WebhooksView.as_view(), name="webhooks"),
    path("webhooks/<id:webhook_id>", webhooks.WebhookDetailView.as_view(), name="webhook"),
    path("webhooks/<id:webhook_id>/ping", webhooks.WebhookPingView.as_view(), name="webhook-ping"),
    path("webhooks/<id:webhook_id>/enable", webhooks.WebhookEnableView.as_view(), name="webhook-enable"),
    path("webhooks/<id:webhook_id>/disable", webhooks.WebhookDisableView.as_view(), name="webhook-disable"),
    path(
        "webhooks/<id:webhook_id>/deliveries",
        webhooks.WebhookDeliveriesView.as_view(),
        name="webhook-deliveries",
    ),
]

urlpatterns = [
    path("v1/", include((v1, "api_v1"))),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^[\s\S]*$", api_not_found),  # [\s\S]: paths with newlines too
]
