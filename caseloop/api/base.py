"""The base of every API view: who acts, body size, idempotency, pagination and long-polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.db.models import Model, QuerySet
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from caseloop.accounts.permissions import Actor
from caseloop.api.auth import ActorPermission
from caseloop.api.errors import PayloadTooLarge
from caseloop.api.idempotency import idempotent

M = TypeVar("M", bound=Model)

# Long-polls (``?wait=``) answer within this many seconds at most.
MAX_WAIT_SECONDS = 30.0
_POLL_INTERVALS = (0.05, 0.1, 0.2, 0.3, 0.5)


class ApiView(APIView):
    """One operation of the API. Subclasses set ``permissions`` (HTTP method -> permission name,
    checked before the handler runs; services check again) and call services and selectors."""

    permission_classes = [ActorPermission]
    permissions: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Nested serializers are named after their view in the schema (CasesView.CreateInput ->
        # CasesCreateInput), so every view may call its input CreateInput.
        super().__init_subclass__(**kwargs)
        prefix = cls.__name__.removesuffix("View")
        for name, value in list(vars(cls).items()):
            if isinstance(value, type) and issubclass(value, serializers.BaseSerializer):
                value.__name__ = f"{prefix}{name}"

    @property
    def actor(self) -> Actor:
        return self.request.actor

    def initial(self, request, *args, **kwargs) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise PayloadTooLarge(
                f"The body has {length:,} bytes; "
                f"at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} are accepted."
            )
        if request.method == "POST":
            # Read the body now: the CSRF check of session authentication parses request.data, after
            # which the raw bytes the Idempotency-Key fingerprint needs could no longer be read.
            request._request.body  # noqa: B018
        super().initial(request, *args, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        # APIView.dispatch, with the POST handler run under its Idempotency-Key.
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            self.initial(request, *args, **kwargs)
            method = (request.method or "").lower()
            handler: Any = getattr(self, method, self.http_method_not_allowed)
            if method not in self.http_method_names:
                handler = self.http_method_not_allowed
            if method == "post":
                response = idempotent(request, self.actor, lambda: self._run(handler, request, args, kwargs))
            else:
                response = handler(request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    def _run(self, handler: Callable, request, args, kwargs):
        try:
            return handler(request, *args, **kwargs)
        except Exception as exc:
            return self.handle_exception(exc)

    # ---------------------------------------------------------------- helpers

    def get_one(self, queryset: QuerySet[M], pk: Any, label: str) -> M:
        """The object of the actor's organisation (the queryset is scoped), or 404."""
        obj = queryset.filter(pk=pk).first()
        if obj is None:
            raise NotFound(f"No {label} {pk} in your organisation.")
        return obj

    def paginate(self, queryset: QuerySet, serializer_class, *, ordering: str = "-id", context=None):
        paginator = ApiCursorPagination()
        paginator.ordering = ordering
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        data = serializer_class(page, many=True, context=context or {}).data
        return paginator.get_paginated_response(data)


class ApiCursorPagination(CursorPagination):
    """Cursor pagination: ``?limit=`` (1 to 500) and the opaque ``next``/``previous`` links."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-id"


def long_poll(fetch: Callable[[], M], done: Callable[[M], bool], wait: float) -> M:
    """``fetch()`` until ``done`` or ``wait`` seconds have passed; returns the last fetch."""
    deadline = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
    obj = fetch()
    attempt = 0
    while not done(obj):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(left, _POLL_INTERVALS[min(attempt, len(_POLL_INTERVALS) - 1)]))
        attempt += 1
        obj = fetch()
    return obj


MAX_ID = 2**63 - 1


def IdField(**kwargs) -> serializers.IntegerField:
    """A primary key in a body or query: a positive integer the database can hold."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def WaitField() -> serializers.FloatField:
    return serializers.FloatField(
        required=False,
        min_value=0,
        max_value=MAX_WAIT_SECONDS,
        help_text=f"Long-poll: wait up to this many seconds (at most {MAX_WAIT_SECONDS:g}) for the "
        "state to settle before answering.",
    )


def valid_query(serializer_class, request) -> dict[str, Any]:
    """The query string validated by ``serializer_class``; 400 naming the parameter otherwise."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def valid_body(serializer_class, request) -> dict[str, Any]:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def created(data: Any, location: str) -> Response:
    return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})
