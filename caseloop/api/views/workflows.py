"""Workflows and their versions; rubrics, their versions, and the score-preview and red-team actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from caseloop.api import selectors
from caseloop.api.base import ApiView, IdField, created, valid_body, valid_query
from caseloop.api.schema import PAGE_PARAMETERS, paginated
from caseloop.api.serializers import (
    RubricSerializer,
    RubricVersionSerializer,
    WorkflowSerializer,
    WorkflowVersionSerializer,
)
from workflows.models import Rubric, RubricVersion, Workflow, WorkflowVersion
from workflows.packs import get_pack
from workflows.services import rubrics as rubric_services
from workflows.services import workflow_create, workflow_version_create

TAG = ["workflows"]
RUBRIC_TAG = ["rubrics"]


class WorkflowsView(ApiView):
    permissions = {"GET": "workflow.view", "POST": "workflow.edit"}

    class CreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(max_length=80, required=False, allow_blank=True, default="")
        description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
        pack = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
        spec = serializers.DictField(
            required=False, help_text="The case schema, tools and decisions; defaults to the pack's spec."
        )

    @extend_schema(
        tags=TAG,
        operation_id="workflows_list",
        parameters=PAGE_PARAMETERS,
        responses=paginated(WorkflowSerializer),
    )
    def get(self, request):
        return self.paginate(selectors.workflows(actor=self.actor), WorkflowSerializer)

    @extend_schema(
        tags=TAG, operation_id="workflows_create", request=CreateInput, responses={201: WorkflowSerializer}
    )
    def post(self, request):
        data = valid_body(self.CreateInput, request)
        spec = data.pop("spec", None)
        if spec is None:
            if not data["pack"]:
                raise serializers.ValidationError({"spec": ["Give a spec, or a pack whose spec to use."]})
            try:
                spec = get_pack(data["pack"]).spec_dict
            except KeyError:
                raise serializers.ValidationError({"pack": [f"Unknown pack {data['pack']!r}."]}) from None
        workflow = workflow_create(actor=self.actor, spec=spec, **data)
        return created(WorkflowSerializer(workflow).data, f"/api/v1/workflows/{workflow.pk}")


class WorkflowDetailView(ApiView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(tags=TAG, operation_id="workflows_retrieve", responses=WorkflowSerializer)
    def get(self, request, workflow_id: int):
        workflow = self.get_one(selectors.workflows(actor=self.actor), workflow_id, "workflow")
        return Response(WorkflowSerializer(workflow).data)


def workflow_of(view: ApiView, workflow_id: int) -> Workflow:
    return view.get_one(selectors.workflows(actor=view.actor), workflow_id, "workflow")


class WorkflowVersionsView(ApiView):
    permissions = {"GET": "workflow.view", "POST": "workflow.edit"}

    class CreateInput(serializers.Serializer):
        spec = serializers.DictField()
        note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    @extend_schema(
        tags=TAG,
        operation_id="workflow_versions_list",
        parameters=PAGE_PARAMETERS,
        responses=paginated(WorkflowVersionSerializer),
    )
    def get(self, request, workflow_id: int):
        workflow = workflow_of(self, workflow_id)
        versions = selectors.workflow_versions(actor=self.actor, workflow=workflow)
        return self.paginate(versions, WorkflowVersionSerializer, ordering="-number")

    @extend_schema(
        tags=TAG,
        operation_id="workflow_versions_create",
        request=CreateInput,
        responses={201: WorkflowVersionSerializer},
    )
    def post(self, request, workflow_id: int):
        workflow = workflow_of(self, workflow_id)
        data = valid_body(self.CreateInput, request)
        version = workflow_version_create(actor=self.actor, workflow=workflow, **data)
        return created(
            WorkflowVersionSerializer(version).data,
            f"/api/v1/workflows/{workflow.pk}/versions/{version.number}",
        )


class WorkflowVersionDetailView(ApiView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(tags=TAG, operation_id="workflow_versions_retrieve", responses=WorkflowVersionSerializer)
    def get(self, request, workflow_id: int, number: int):
        workflow = workflow_of(self, workflow_id)
        version = (
            selectors.workflow_versions(actor=self.actor, workflow=workflow).filter(number=number).first()
        )
        if version is None:
            raise WorkflowVersion.DoesNotExist
        return Response(WorkflowVersionSerializer(version).data)


# --------------------------------------------------------------------------- rubrics


class RubricsView(ApiView):
    permissions = {"GET": "workflow.view", "POST": "rubric.edit"}

    class ListQuery(serializers.Serializer):
        workflow = IdField(required=False)

    class CreateInput(serializers.Serializer):
        workflow = IdField()
        name = serializers.CharField(max_length=200)
        definition = serializers.DictField(help_text="Criteria, step_cost and shaping.")

    @extend_schema(
        tags=RUBRIC_TAG,
        operation_id="rubrics_list",
        parameters=[ListQuery, *PAGE_PARAMETERS],
        responses=paginated(RubricSerializer),
    )
    def get(self, request):
        query = valid_query(self.ListQuery, request)
        workflow = workflow_of(self, query["workflow"]) if "workflow" in query else None
        return self.paginate(selectors.rubrics(actor=self.actor, workflow=workflow), RubricSerializer)

    @extend_schema(
        tags=RUBRIC_TAG, operation_id="rubrics_create", request=CreateInput, responses={201: RubricSerializer}
    )
    def post(self, request):
        data = valid_body(self.CreateInput, request)
        workflow = workflow_of(self, data["workflow"])
        rubric = rubric_services.rubric_create(
            actor=self.actor, workflow=workflow, name=data["name"], definition=data["definition"]
        )
        return created(RubricSerializer(rubric).data, f"/api/v1/rubrics/{rubric.pk}")


def rubric_of(view: ApiView, rubric_id: int) -> Rubric:
    return view.get_one(selectors.rubrics(actor=view.actor), rubric_id, "rubric")


def rubric_version_of(view: ApiView, rubric_id: int, number: int) -> RubricVersion:
    rubric = rubric_of(view, rubric_id)
    version = selectors.rubric_versions(actor=view.actor, rubric=rubric).filter(number=number).first()
    if version is None:
        raise RubricVersion.DoesNotExist
    return version


class RubricDetailView(ApiView):
    permissions = {"GET": "workflow.view"}

    @extend_schema(tags=RUBRIC_TAG, operation_id="rubrics_retrieve", responses=RubricSerializer)
    def get(self, request, rubric_id: int):
        return Response(RubricSerializer(rubric_of(self, rubric_id)).data)


class RubricVersionsView(ApiView):
    permissions = {"GET": "workflow.view", "POST": "rubric.edit"}

    class CreateInput(serializers.Serializer):
        definition = serializers.DictField()
        note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    @extend_schema(
        tags=RUBRIC_TAG,
        operation_id="rubric_versions_list",
        parameters=PAGE_PARAMETERS,
        responses=paginated(RubricVersionSerializer),
    )
    def get(self, request, rubric_id: int):
        rubric = rubric_of(self, rubric_id)
        versions = selectors.rubric_versions(actor=self.actor, rubric=rubric)
        return self.paginate(versions, RubricVersionSerializer, ordering="-number")

    @extend_schema(
        tags=RUBRIC_TAG,
        operation_id="rubric_versions_create",
        request=CreateInput,
        responses={201: RubricVersionSerializer},
    )
    def post(self, request, rubric_id: int):
        rubric = rubric_of(self, rubric_id)
        data = valid_body(self.CreateInput, request)
        version = rubric_services.rubric_version_create(actor=self.actor, rubric=rubric, **data)
        return created(
            RubricVersionSerializer(version).data, f"/api/v1/rubrics/{rubric.pk}/versions/{version.number}"
        )


class RubricVersionDetailView(ApiView):
    permissions = {"GET": "workflow.view", "PATCH": "rubric.edit"}

    class UpdateInput(serializers.Serializer):
        definition = serializers.DictField()
        note = serializers.CharField(max_length=300, required=False, allow_blank=True)

    @extend_schema(
        tags=RUBRIC_TAG, operation_id="rubric_versions_retrieve", responses=RubricVersionSerializer
    )
    def get(self, request, rubric_id: int, number: int):
        return Response(RubricVersionSerializer(rubric_version_of(self, rubric_id, number)).data)

    @extend_schema(
        tags=RUBRIC_TAG,
        operation_id="rubric_versions_update",
        request=UpdateInput,
        responses=RubricVersionSerializer,
        description="Edit a draft version in place; refused (400) once anything was scored with it.",
    )
    def patch(self, request, rubric_id: int, number: int):
        version = rubric_version_of(self, rubric_id, number)
        data = valid_body(self.UpdateInput, request)
        version = rubric_services.rubric_version_update(
            actor=self.actor, version=version, definition=data["definition"], note=data.get("note")
        )
        return Response(RubricVersionSerializer(version).data)


class RubricRedTeamView(ApiView):
    permissions = {"POST": "workflow.view"}

    class Input(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=200)
        threshold = serializers.FloatField(min_value=0, max_value=1, default=0.5)

    Output = inline_serializer(
        name="RedTeamReport",
        fields={
            "scores": serializers.DictField(
                child=serializers.FloatField(), help_text="Exploit -> mean score."
            ),
            "flagged": serializers.ListField(child=serializers.CharField()),
            "threshold": serializers.FloatField(),
            "reference_score": serializers.FloatField(allow_null=True),
            "passed": serializers.BooleanField(),
        },
    )

    @extend_schema(
        tags=RUBRIC_TAG,
        operation_id="rubric_versions_red_team",
        request=Input,
        responses=Output,
        description="Score the exploit policies with this rubric version on validation and test "
        "cases; exploits scoring at or above the threshold are flagged. Saves nothing.",
    )
    def post(self, request, rubric_id: int, number: int):
        version = rubric_version_of(self, rubric_id, number)
        data = valid_body(self.Input, request)
        report = rubric_services.rubric_redteam_run(actor=self.actor, version=version, **data)
        return Response({**report.to_dict(), "passed": report.passed})


class RubricPreviewView(ApiView):
    permissions = {"POST": "workflow.view"}

    class Input(serializers.Serializer):
        definition = serializers.DictField(help_text="The draft rubric definition to score.")
        limit = serializers.IntegerField(
            min_value=1,
            max_value=rubric_services.PREVIEW_MAX_CASES,
            required=False,
            help_text="Labelled cases to score on (default 50).",
        )

    @extend_schema(
        tags=RUBRIC_TAG,
        operation_id="rubrics_score_preview",
        request=Input,
        responses=inline_serializer(
            name="RubricPreview",
            fields={
                "definition": serializers.DictField(),
                "workflow_version": serializers.IntegerField(),
                "cases": serializers.IntegerField(),
                "sample": serializers.CharField(),
                "criteria": serializers.ListField(child=serializers.DictField()),
                "policies": serializers.DictField(child=serializers.DictField()),
                "runs": serializers.ListField(child=serializers.DictField()),
                "redteam": serializers.DictField(),
            },
        ),
        description="Score a draft rubric without saving it: baseline and exploit policies on labelled "
        "cases, the workflow's recent runs re-scored, and the red-team report.",
    )
    def post(self, request, workflow_id: int):
        workflow = workflow_of(self, workflow_id)
        data = valid_body(self.Input, request)
        preview = rubric_services.rubric_preview(actor=self.actor, workflow=workflow, **data)
        return Response(preview)
