"""Training jobs: launch, follow progress and metrics, cancel (``training.services.jobs``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from caseloop.api import selectors
from caseloop.api.base import ApiView, IdField, created, valid_body, valid_query
from caseloop.api.schema import PAGE_PARAMETERS, paginated
from caseloop.api.serializers import TrainingJobSerializer, TrainingMetricSerializer
from caseloop.api.views.workflows import workflow_of
from training.models import JobStatus, TrainingJob
from training.services.jobs import training_job_cancel, training_job_launch
from workflows.models import RubricVersion

TAG = ["training"]


def job_of(view: ApiView, job_id: int) -> TrainingJob:
    return view.get_one(selectors.training_jobs(actor=view.actor), job_id, "training job")


class TrainingJobsView(ApiView):
    permissions = {"GET": "training.view", "POST": "training.launch"}

    class ListQuery(serializers.Serializer):
        workflow = IdField(required=False)
        status = serializers.ChoiceField(choices=JobStatus.choices, required=False)

    class LaunchInput(serializers.Serializer):
        workflow = IdField()
        config = serializers.DictField(
            required=False,
            default=dict,
            help_text='{"ppo": {…PPO settings…}, "include_review_cases": false, "evaluate_limit": null}; '
            "unset settings take their defaults.",
        )
        policy_name = serializers.CharField(max_length=200, required=False, default="PPO policy")
        rubric_version = IdField(
            required=False, help_text="The rubric version's id; the default rubric otherwise."
        )

    @extend_schema(
        tags=TAG,
        operation_id="training_jobs_list",
        parameters=[ListQuery, *PAGE_PARAMETERS],
        responses=paginated(TrainingJobSerializer),
    )
    def get(self, request):
        query = valid_query(self.ListQuery, request)
        if "workflow" in query:
            query["workflow"] = workflow_of(self, query["workflow"])
        return self.paginate(selectors.training_jobs(actor=self.actor, **query), TrainingJobSerializer)

    @extend_schema(
        tags=TAG,
        operation_id="training_jobs_launch",
        request=LaunchInput,
        responses={201: TrainingJobSerializer},
        description="Queue a training job for the training workers (admins; scope training:write).",
    )
    def post(self, request):
        data = valid_body(self.LaunchInput, request)
        workflow = workflow_of(self, data["workflow"])
        rubric_version = None
        if "rubric_version" in data:
            rubric_version = RubricVersion.objects.filter(
                pk=data["rubric_version"], rubric__workflow__organization=self.actor.organization
            ).first()
            if rubric_version is None:
                raise serializers.ValidationError({"rubric_version": ["No such rubric version."]})
        job = training_job_launch(
            actor=self.actor,
            workflow=workflow,
            config=data["config"],
            policy_name=data["policy_name"],
            rubric_version=rubric_version,
        )
        return created(TrainingJobSerializer(job).data, f"/api/v1/training-jobs/{job.pk}")


class TrainingJobDetailView(ApiView):
    permissions = {"GET": "training.view"}

    @extend_schema(
        tags=TAG,
        operation_id="training_jobs_retrieve",
        responses=TrainingJobSerializer,
        description="Status, progress (0..1), the update reached, the error if it failed, and "
        "the resulting policy version once it succeeded.",
    )
    def get(self, request, job_id: int):
        return Response(TrainingJobSerializer(job_of(self, job_id)).data)


class TrainingJobMetricsView(ApiView):
    permissions = {"GET": "training.view"}

    class Query(serializers.Serializer):
        after_update = serializers.IntegerField(
            min_value=0, max_value=2**31, required=False, help_text="Only updates after this one."
        )

    @extend_schema(
        tags=TAG,
        operation_id="training_jobs_metrics",
        parameters=[Query, *PAGE_PARAMETERS],
        responses=paginated(TrainingMetricSerializer),
        description="The job's metric series, one point per update, oldest first.",
    )
    def get(self, request, job_id: int):
        job = job_of(self, job_id)
        query = valid_query(self.Query, request)
        metrics = selectors.training_metrics(
            actor=self.actor, job=job, after_update=query.get("after_update")
        )
        return self.paginate(metrics, TrainingMetricSerializer, ordering="update")


class TrainingJobCancelView(ApiView):
    permissions = {"POST": "training.launch"}

    @extend_schema(
        tags=TAG,
        operation_id="training_jobs_cancel",
        request=None,
        responses=TrainingJobSerializer,
        description="Cancel a queued job at once, or ask a running one to stop at its next update.",
    )
    def post(self, request, job_id: int):
        job = training_job_cancel(actor=self.actor, job=job_of(self, job_id))
        return Response(TrainingJobSerializer(job).data)
