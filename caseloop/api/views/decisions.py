"""Decisions (get, list, long-poll until final) and reviews (claim the next one, give a verdict,
release a claim), over ``workflows.services.reviews`` and ``decisions``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from caseloop.api import selectors
from caseloop.api.base import ApiView, IdField, WaitField, created, long_poll, valid_body, valid_query
from caseloop.api.schema import PAGE_PARAMETERS, paginated
from caseloop.api.serializers import OPEN_DECISION_STATUSES, DecisionSerializer, ReviewSerializer
from caseloop.api.views.workflows import workflow_of
from workflows.models import Decision, DecisionStatus, Review
from workflows.services import decision_execute, review_claim_next, review_release, review_submit

TAG = ["decisions"]
REVIEW_TAG = ["reviews"]


def decision_of(view: ApiView, decision_id: int) -> Decision:
    return view.get_one(selectors.decisions(actor=view.actor), decision_id, "decision")


class DecisionsView(ApiView):
    permissions = {"GET": "decision.view"}

    class ListQuery(serializers.Serializer):
        status = serializers.ChoiceField(choices=DecisionStatus.choices, required=False)
        workflow = IdField(required=False)
        case = IdField(required=False)
        policy_version = IdField(required=False)

    @extend_schema(
        tags=TAG,
        operation_id="decisions_list",
        parameters=[ListQuery, *PAGE_PARAMETERS],
        responses=paginated(DecisionSerializer),
    )
    def get(self, request):
        query = valid_query(self.ListQuery, request)
        if "workflow" in query:
            query["workflow"] = workflow_of(self, query["workflow"])
        if "case" in query:
            query["case"] = self.get_one(selectors.cases(actor=self.actor), query["case"], "case")
        if "policy_version" in query:
            query["policy_version"] = self.get_one(
                selectors.policy_versions(actor=self.actor), query["policy_version"], "policy version"
            )
        return self.paginate(selectors.decisions(actor=self.actor, **query), DecisionSerializer)


class DecisionDetailView(ApiView):
    permissions = {"GET": "decision.view"}

    class Query(serializers.Serializer):
        wait = WaitField()

    @extend_schema(
        tags=TAG,
        operation_id="decisions_retrieve",
        parameters=[Query],
        responses=DecisionSerializer,
        description="With ?wait=N (at most 30), answers as soon as the decision is final (review over: "
        "executed, rejected, approved, corrected or shadow), or after N seconds with its current state.",
    )
    def get(self, request, decision_id: int):
        wait = valid_query(self.Query, request).get("wait") or 0
        decision = long_poll(
            lambda: decision_of(self, decision_id), lambda d: d.status not in OPEN_DECISION_STATUSES, wait
        )
        return Response(DecisionSerializer(decision).data)


class DecisionExecuteView(ApiView):
    permissions = {"POST": "decision.decide"}

    @extend_schema(
        tags=TAG,
        operation_id="decisions_execute",
        request=None,
        responses=DecisionSerializer,
        description="Execute an approved or corrected decision, for workflows that wait for the "
        "integration to confirm it has carried the outcome out.",
    )
    def post(self, request, decision_id: int):
        decision = decision_execute(actor=self.actor, decision=decision_of(self, decision_id))
        return Response(DecisionSerializer(decision).data)


# --------------------------------------------------------------------------- reviews


class ReviewClaimView(ApiView):
    permissions = {"POST": "review.verdict"}

    class Input(serializers.Serializer):
        workflow = IdField(required=False, help_text="Only this workflow's queue.")

    @extend_schema(
        tags=REVIEW_TAG,
        operation_id="reviews_claim_next",
        request=Input,
        responses={
            200: DecisionSerializer,
            204: OpenApiResponse(description="The queue is empty."),
        },
        description="Claim the review queue's next decision (highest risk, then oldest) for the signed-in "
        "reviewer; 204 when the queue is empty. A reviewer holding a claim gets that decision back. "
        "Reviews are given by people: sign in (session) as a reviewer or admin.",
    )
    def post(self, request):
        data = valid_body(self.Input, request)
        workflow = workflow_of(self, data["workflow"]) if "workflow" in data else None
        decision = review_claim_next(actor=self.actor, workflow=workflow)
        if decision is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(DecisionSerializer(decision).data)


class DecisionReviewsView(ApiView):
    permissions = {"GET": "decision.view", "POST": "review.verdict"}

    class VerdictInput(serializers.Serializer):
        verdict = serializers.ChoiceField(choices=Review.Verdict.choices)
        corrected_decision = serializers.CharField(max_length=80, required=False, allow_blank=True)
        corrected_arguments = serializers.DictField(required=False)
        reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
        comment = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    @extend_schema(
        tags=REVIEW_TAG,
        operation_id="decision_reviews_list",
        parameters=PAGE_PARAMETERS,
        responses=paginated(ReviewSerializer),
    )
    def get(self, request, decision_id: int):
        decision = decision_of(self, decision_id)
        reviews = selectors.reviews(actor=self.actor, decision=decision).select_related("reviewer")
        return self.paginate(reviews, ReviewSerializer, ordering="id")

    @extend_schema(
        tags=REVIEW_TAG,
        operation_id="decision_reviews_create",
        request=VerdictInput,
        responses={201: ReviewSerializer},
        description="Give a verdict on a decision you have claimed: approve; correct (with the corrected "
        "decision and arguments); or reject (with a reason).",
    )
    def post(self, request, decision_id: int):
        decision = decision_of(self, decision_id)
        data = valid_body(self.VerdictInput, request)
        review = review_submit(actor=self.actor, decision=decision, **data)
        return created(ReviewSerializer(review).data, f"/api/v1/decisions/{decision.pk}/reviews")


class DecisionReleaseView(ApiView):
    permissions = {"POST": "review.verdict"}

    @extend_schema(
        tags=REVIEW_TAG,
        operation_id="decisions_release_claim",
        request=None,
        responses=DecisionSerializer,
        description="Give a claimed decision back to the review queue.",
    )
    def post(self, request, decision_id: int):
        decision = review_release(actor=self.actor, decision=decision_of(self, decision_id))
        return Response(DecisionSerializer(decision).data)
