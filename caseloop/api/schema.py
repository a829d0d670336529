"""OpenAPI details drf-spectacular cannot infer: the bearer-key scheme, the error responses every
operation may give, and the cursor-paginated list envelopes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "caseloop.api.auth.BearerKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key of your organisation: `Authorization: Bearer cl_…`. "
            "Its scopes decide what it may do.",
        }


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every 4xx answer: a machine-readable type, a sentence, and field -> messages.",
    "properties": {
        "type": {"type": "string", "example": "validation_error"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["type", "detail", "errors"],
}
IDEMPOTENCY_HEADER: dict[str, Any] = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "Repeat a POST safely: the same key and body return the first response; the same "
    "key with another request answers 409. 1 to 255 printable ASCII characters, e.g. a UUID.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
}
_ALWAYS = {
    "400": "Invalid input: `errors` names each field.",
    "401": "No credential, or an invalid one.",
    "403": "The key's scopes or the member's role do not allow this.",
    "404": "Not found in your organisation.",
    "406": "The Accept header asks for something other than JSON.",
    "429": "Too many requests for this credential: see Retry-After.",
}
_WITH_BODY = {
    "409": "The Idempotency-Key was used with a different request, or the request conflicts.",
    "413": "The body is too large.",
    "415": "The body is not JSON.",
}


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular post-processing hook: the error shape on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            statuses = dict(_ALWAYS)
            if method in ("post", "put", "patch"):
                statuses.update(_WITH_BODY)
            if method == "post":
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in parameters):
                    parameters.append(IDEMPOTENCY_HEADER)
            for code, description in statuses.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
            retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
            operation["responses"]["429"].setdefault("headers", retry)
    return result


PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="The opaque cursor from a previous page's next/previous."),
    OpenApiParameter("limit", int, description="Items per page, 1 to 500 (default 50)."),
]

_pages: dict[type, Any] = {}


def paginated(serializer_class: type[serializers.Serializer]):
    """The ``{"next", "previous", "results"}`` envelope around ``serializer_class``."""
    if serializer_class not in _pages:
        name = serializer_class.__name__.removesuffix("Serializer")
        _pages[serializer_class] = inline_serializer(
            name=f"Paginated{name}List",
            fields={
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": serializer_class(many=True),
            },
        )
    return _pages[serializer_class]
