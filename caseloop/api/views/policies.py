"""Policies and their versions: list, create (rules policies), evaluate on a split, promote."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from caseloop.api import selectors
from caseloop.api.base import ApiView, IdField, created, valid_body, valid_query
from caseloop.api.schema import PAGE_PARAMETERS, paginated
from caseloop.api.serializers import EvaluationSerializer, PolicySerializer, PolicyVersionSerializer
from caseloop.api.views.workflows import workflow_of
from training.models import Policy, PolicyKind, PolicyVersion, Stage
from training.services import policy_create, policy_version_create, policy_version_promote
from training.services.evaluation import policy_evaluate
from workflows.models import RubricVersion, Split

TAG = ["policies"]


def policy_of(view: ApiView, policy_id: int) -> Policy:
    return view.get_one(selectors.policies(actor=view.actor), policy_id, "policy")


def version_of(view: ApiView, version_id: int) -> PolicyVersion:
    versions = selectors.policy_versions(actor=view.actor).select_related("policy__workflow")
    return view.get_one(versions, version_id, "policy version")


class PoliciesView(ApiView):
    permissions = {"GET": "policy.view", "POST": "policy.edit"}

    class ListQuery(serializers.Serializer):
        workflow = IdField(required=False)

    class CreateInput(serializers.Serializer):
        workflow = IdField()
        name = serializers.CharField(max_length=200)
        kind = serializers.ChoiceField(choices=PolicyKind.choices)

    @extend_schema(
        tags=TAG,
        operation_id="policies_list",
        parameters=[ListQuery, *PAGE_PARAMETERS],
        responses=paginated(PolicySerializer),
    )
    def get(self, request):
        query = valid_query(self.ListQuery, request)
        workflow = workflow_of(self, query["workflow"]) if "workflow" in query else None
        return self.paginate(selectors.policies(actor=self.actor, workflow=workflow), PolicySerializer)

    @extend_schema(
        tags=TAG, operation_id="policies_create", request=CreateInput, responses={201: PolicySerializer}
    )
    def post(self, request):
        data = valid_body(self.CreateInput, request)
        workflow = workflow_of(self, data["workflow"])
        policy = policy_create(actor=self.actor, workflow=workflow, name=data["name"], kind=data["kind"])
        return created(PolicySerializer(policy).data, f"/api/v1/policies/{policy.pk}")


class PolicyDetailView(ApiView):
    permissions = {"GET": "policy.view"}

    @extend_schema(tags=TAG, operation_id="policies_retrieve", responses=PolicySerializer)
    def get(self, request, policy_id: int):
        return Response(PolicySerializer(policy_of(self, policy_id)).data)


class PolicyVersionsView(ApiView):
    permissions = {"GET": "policy.view", "POST": "policy.edit"}

    class ListQuery(serializers.Serializer):
        stage = serializers.ChoiceField(choices=Stage.choices, required=False)

    class CreateInput(serializers.Serializer):
        config = serializers.DictField(help_text="A rules policy's checks, rules and default decision.")

    @extend_schema(
        tags=TAG,
        operation_id="policy_versions_list",
        parameters=[ListQuery, *PAGE_PARAMETERS],
        responses=paginated(PolicyVersionSerializer),
    )
    def get(self, request, policy_id: int):
        policy = policy_of(self, policy_id)
        query = valid_query(self.ListQuery, request)
        versions = selectors.policy_versions(actor=self.actor, policy=policy, stage=query.get("stage"))
        return self.paginate(versions, PolicyVersionSerializer)

    @extend_schema(
        tags=TAG,
        operation_id="policy_versions_create",
        request=CreateInput,
        responses={201: PolicyVersionSerializer},
        description="A new candidate version of a rules policy (neural versions come from training jobs).",
    )
    def post(self, request, policy_id: int):
        policy = policy_of(self, policy_id)
        data = valid_body(self.CreateInput, request)
        if policy.kind != PolicyKind.RULES:
            raise serializers.ValidationError(
                {
                    "config": [
                        f"{policy.name} is a {policy.kind} policy: its versions come from training jobs."
                    ]
                }
            )
        version = policy_version_create(actor=self.actor, policy=policy, config=data["config"])
        return created(PolicyVersionSerializer(version).data, f"/api/v1/policy-versions/{version.pk}")


class PolicyVersionDetailView(ApiView):
    permissions = {"GET": "policy.view"}

    @extend_schema(tags=TAG, operation_id="policy_versions_retrieve", responses=PolicyVersionSerializer)
    def get(self, request, version_id: int):
        return Response(PolicyVersionSerializer(version_of(self, version_id)).data)


class PolicyVersionEvaluationsView(ApiView):
    permissions = {"GET": "policy.view", "POST": "policy.view"}

    class EvaluateInput(serializers.Serializer):
        split = serializers.ChoiceField(
            choices=Split.choices, default=Split.VALIDATION, help_text="validation, test or train."
        )
        limit = serializers.IntegerField(
            min_value=1,
            max_value=5000,
            required=False,
            help_text="At most this many labelled cases of the split.",
        )
        rubric_version = serializers.IntegerField(
            min_value=1, required=False, help_text="The rubric version's id; the default rubric otherwise."
        )

    @extend_schema(
        tags=TAG,
        operation_id="policy_version_evaluations_list",
        parameters=PAGE_PARAMETERS,
        responses=paginated(EvaluationSerializer),
    )
    def get(self, request, version_id: int):
        version = version_of(self, version_id)
        return self.paginate(selectors.evaluations(actor=self.actor, version=version), EvaluationSerializer)

    @extend_schema(
        tags=TAG,
        operation_id="policy_versions_evaluate",
        request=EvaluateInput,
        responses={201: EvaluationSerializer},
        description="Score the version on a split's labelled cases beside the baselines and production; "
        "stores the runs and the report (the evidence promotion asks for).",
    )
    def post(self, request, version_id: int):
        version = version_of(self, version_id)
        data = valid_body(self.EvaluateInput, request)
        rubric_version = None
        if "rubric_version" in data:
            rubric_version = RubricVersion.objects.filter(
                pk=data["rubric_version"], rubric__workflow=version.policy.workflow
            ).first()
            if rubric_version is None:
                raise serializers.ValidationError(
                    {"rubric_version": ["No such rubric version in this policy's workflow."]}
                )
        report = policy_evaluate(
            actor=self.actor,
            version=version,
            split=data["split"],
            rubric_version=rubric_version,
            limit=data.get("limit"),
        )
        return created(EvaluationSerializer(report).data, f"/api/v1/policy-versions/{version.pk}/evaluations")


class PolicyVersionPromoteView(ApiView):
    permissions = {"POST": "policy.promote"}

    class Input(serializers.Serializer):
        stage = serializers.ChoiceField(choices=Stage.choices)
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
        force = serializers.BooleanField(
            default=False,
            help_text="Override the evaluation gate (needs a reason); autonomy cannot be forced.",
        )

    @extend_schema(
        tags=TAG,
        operation_id="policy_versions_promote",
        request=Input,
        responses=PolicyVersionSerializer,
        description="Move the version to a stage. Entering production retires the previous "
        "production version. Refused (400, with the figures) when the gates are not met.",
    )
    def post(self, request, version_id: int):
        version = version_of(self, version_id)
        data = valid_body(self.Input, request)
        version = policy_version_promote(actor=self.actor, version=version, **data)
        return Response(PolicyVersionSerializer(version).data)
