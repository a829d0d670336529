"""One error shape for every 4xx answer of the API::

    {"type": "validation_error", "detail": "…", "errors": {"cases[3].fields.amount_claimed": ["…"]}}

``type`` is a stable machine name (see :data:`ERROR_TYPES`), ``detail`` a sentence for people and
``errors`` maps each offending field — dotted paths, list items by index — to its messages (empty
when the problem is not about fields). DRF's exceptions, Django's ValidationError, PermissionDenied
and DoesNotExist raised by services and selectors, oversized bodies and unknown /api/ paths all
come out in this shape.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

NON_FIELD = "non_field_errors"

# DRF default_code -> the error type clients see
ERROR_TYPES: dict[str, str] = {
    "invalid": "validation_error",
    "parse_error": "parse_error",
    "authentication_failed": "authentication_failed",
    "not_authenticated": "not_authenticated",
    "permission_denied": "permission_denied",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "not_acceptable": "not_acceptable",
    "unsupported_media_type": "unsupported_media_type",
    "throttled": "throttled",
    "conflict": "conflict",
    "payload_too_large": "payload_too_large",
}


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def error_body(type_: str, detail: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"type": type_, "detail": detail, "errors": errors or {}}


def _join(prefix: str, key: Any) -> str:
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return f"{prefix}[{key}]"
    key = NON_FIELD if key == NON_FIELD_ERRORS else str(key)
    if not prefix:
        return key
    return prefix if key == NON_FIELD else f"{prefix}.{key}"


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail (dicts, lists, per-item lists) as ``{dotted.path[i]: [messages]}``."""
    flat: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, _join(path, key))
        elif isinstance(node, (list, tuple)):
            if all(not isinstance(item, (dict, list, tuple)) for item in node):
                flat.setdefault(path or NON_FIELD, []).extend(str(item) for item in node)
            else:
                for index, item in enumerate(node):
                    if item:  # a ListSerializer gives {} for the items that are valid
                        walk(item, _join(path, index))
        else:
            flat.setdefault(path or NON_FIELD, []).append(str(node))

    walk(detail, prefix)
    return flat


def django_validation_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    """A service's ValidationError as ``{field: [messages]}``; one without fields under non_field_errors."""
    if hasattr(exc, "error_dict"):
        return {_join("", key): [str(m) for m in messages] for key, messages in exc.message_dict.items()}
    return {NON_FIELD: [str(m) for m in exc.messages]}


def _summary(errors: dict[str, list[str]]) -> str:
    messages = [(field, m) for field, ms in errors.items() for m in ms]
    if len(messages) == 1:
        field, message = messages[0]
        return message if field == NON_FIELD else f"{field}: {message}"
    return f"{len(messages)} problems with the request; see errors."


def _model_name(exc: ObjectDoesNotExist) -> str:
    owner = type(exc).__qualname__.split(".")[0]
    return "Object" if owner in ("ObjectDoesNotExist", "DoesNotExist") else owner


def as_api_exception(exc: Exception) -> Exception:
    """Django-level exceptions raised by services and selectors, as DRF's."""
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(django_validation_errors(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or None)
    if isinstance(exc, ObjectDoesNotExist):
        return exceptions.NotFound(f"{_model_name(exc)} not found in your organisation.")
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    return exc


def exception_handler(exc: Exception, context: dict[str, Any]):
    """DRF's EXCEPTION_HANDLER: everything it knows, in the one error shape. Unknown exceptions
    propagate (Django answers 500 and logs them): they are bugs, not inputs."""
    exc = as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, exceptions.APIException)
    type_ = ERROR_TYPES.get(exc.default_code, exc.default_code)
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        response.data = error_body("validation_error", _summary(errors), errors)
    else:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response.data = error_body(type_, str(detail))
    return response


def json_error(status_code: int, type_: str, detail: str) -> JsonResponse:
    return JsonResponse(error_body(type_, detail), status=status_code)


@csrf_exempt  # an unknown path answers 404 to every method, never a CSRF page
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Any /api/ path no route matches: 404 in the error shape, not Django's HTML page."""
    return json_error(404, "not_found", f"No API endpoint at {request.path}.")
