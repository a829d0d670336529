"""Cases: create one (queued for the ``decisions`` workers, or decided in the request with
``?decide=sync``), create up to 1,000 at once (all or nothing), list with filters, get."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from caseloop.api import selectors
from caseloop.api.base import ApiView, IdField, WaitField, created, long_poll, valid_body, valid_query
from caseloop.api.errors import django_validation_errors
from caseloop.api.schema import PAGE_PARAMETERS, paginated
from caseloop.api.serializers import CaseSerializer
from caseloop.api.views.workflows import workflow_of
from caseloop.audit.services import audit_deferred
from workflows.models import Case, CaseSource, CaseStatus, Decision, Split
from workflows.selectors import workflow_list
from workflows.services import case_create, case_decide

logger = logging.getLogger(__name__)

TAG = ["cases"]
MAX_BULK = 1000


class CaseInput(serializers.Serializer):
    fields = serializers.DictField(help_text="The case's fields, checked against the workflow's case schema.")
    expected = serializers.DictField(
        required=False, allow_null=True, default=None, help_text='{"decision": …, "arguments": {…}}'
    )
    split = serializers.ChoiceField(choices=Split.choices, default=Split.LIVE)
    external_id = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")


class CasesView(ApiView):
    permissions = {"GET": "case.view", "POST": "case.create"}

    class CreateInput(CaseInput):
        workflow = IdField()

    class CreateQuery(serializers.Serializer):
        decide = serializers.ChoiceField(
            choices=["queue", "sync"],
            default="queue",
            help_text="queue (default): a decisions worker decides a live case; sync: decided within "
            "this request, the decision in the response.",
        )

    class ListQuery(serializers.Serializer):
        workflow = IdField(required=False)
        split = serializers.ChoiceField(choices=Split.choices, required=False)
        status = serializers.ChoiceField(choices=CaseStatus.choices, required=False)
        source = serializers.ChoiceField(choices=CaseSource.choices, required=False)
        external_id = serializers.CharField(max_length=120, required=False)
        created_after = serializers.DateTimeField(required=False)
        created_before = serializers.DateTimeField(required=False)

    @extend_schema(
        tags=TAG,
        operation_id="cases_list",
        parameters=[ListQuery, *PAGE_PARAMETERS],
        responses=paginated(CaseSerializer),
    )
    def get(self, request):
        query = valid_query(self.ListQuery, request)
        if "workflow" in query:
            query["workflow"] = workflow_of(self, query["workflow"])
        return self.paginate(selectors.cases(actor=self.actor, **query), CaseSerializer)

    @extend_schema(
        tags=TAG,
        operation_id="cases_create",
        request=CreateInput,
        parameters=[CreateQuery],
        responses={201: CaseSerializer},
    )
    def post(self, request):
        decide = valid_query(self.CreateQuery, request)["decide"]
        data = valid_body(self.CreateInput, request)
        workflow = self.get_one(workflow_list(actor=self.actor), data.pop("workflow"), "workflow")
        sync = False
        decision = None
        # Audit events appended at the end: the organisation's chain is locked for the commit only,
        # not for the whole decision, so sync decisions of one organisation run side by side.
        with transaction.atomic(), audit_deferred():
            case = case_create(actor=self.actor, workflow=workflow, source=CaseSource.API, **data)
            if decide == "sync" and case.status == CaseStatus.QUEUED:
                sync = True
                decision = decide_now(case)
        if decision is not None:
            case.status = CaseStatus.DECIDED
            case.production_decisions = [decision]  # type: ignore[attr-defined]  # read by CaseSerializer
        elif sync:  # no production version yet, or it did not decide: read back where the case is
            case = selectors.with_decision(Case.objects.filter(pk=case.pk)).get()
        else:
            case.production_decisions = []  # type: ignore[attr-defined]
        return created(CaseSerializer(case).data, f"/api/v1/cases/{case.pk}")


def decide_now(case: Case) -> Decision | None:
    """Decide a just-created live case in this request; its production decision, or None. The task
    queued on commit then finds the case decided and does nothing. Should deciding fail here, the
    case stays queued for the workers."""
    try:
        # case_decide is atomic: inside this request's transaction it is a savepoint, rolled back
        # alone when it fails, so the case is kept.
        return case_decide(case_id=case.pk)
    except Exception:
        logger.exception("deciding case %s in the request failed; it stays queued for the workers", case.pk)
        return None


class CaseBulkView(ApiView):
    permissions = {"POST": "case.create"}

    class Input(serializers.Serializer):
        workflow = IdField()
        cases = CaseInput(many=True, min_length=1, max_length=MAX_BULK)

    @extend_schema(
        tags=TAG,
        operation_id="cases_bulk_create",
        request=Input,
        responses={
            201: inline_serializer(name="CaseBulkCreated", fields={"cases": CaseSerializer(many=True)})
        },
        description=f"Create up to {MAX_BULK:,} cases of one workflow at once. Validated as a whole: on "
        "any problem nothing is created and errors are keyed by item and field (cases[3].fields.x). "
        "Live cases are queued for the decisions workers.",
    )
    def post(self, request):
        data = valid_body(self.Input, request)
        workflow = self.get_one(workflow_list(actor=self.actor), data["workflow"], "workflow")
        errors: dict[str, list[str]] = {}
        cases: list[Case] = []
        with transaction.atomic():
            for index, item in enumerate(data["cases"]):
                try:
                    case = case_create(actor=self.actor, workflow=workflow, source=CaseSource.API, **item)
                except DjangoValidationError as exc:
                    for field, messages in django_validation_errors(exc).items():
                        errors[f"cases[{index}].{field}"] = messages
                    continue
                case.production_decisions = []  # type: ignore[attr-defined]  # just created: not decided
                cases.append(case)
            if errors:
                raise serializers.ValidationError(errors)  # rolls back every case created above
        return created({"cases": CaseSerializer(cases, many=True).data}, "/api/v1/cases")


class CaseDetailView(ApiView):
    permissions = {"GET": "case.view"}

    class Query(serializers.Serializer):
        wait = WaitField()

    @extend_schema(
        tags=TAG,
        operation_id="cases_retrieve",
        parameters=[Query],
        responses=CaseSerializer,
        description="With ?wait=N, answers as soon as a queued case has been decided, or after N seconds.",
    )
    def get(self, request, case_id: int):
        wait = valid_query(self.Query, request).get("wait") or 0
        cases = selectors.cases(actor=self.actor)

        def fetch() -> Case:
            return self.get_one(cases.all(), case_id, "case")

        case = long_poll(fetch, lambda c: c.status != CaseStatus.QUEUED, wait)
        return Response(CaseSerializer(case).data)
