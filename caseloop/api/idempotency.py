"""``Idempotency-Key`` on POST: the same key and body get the first response again, without the work
being done twice; the same key with a different request answers 409.

Keys are scoped to the organisation and the credential (API key or user) that sent them and kept
for :data:`KEY_TTL`. The key's row is inserted at the start of the request's transaction and
completed with the response before it commits. On PostgreSQL a concurrent duplicate's INSERT waits
on the unique index until the first request's transaction ends: after a commit it finds the stored
response and replays it, after a rollback its INSERT succeeds and it does the work itself. Only
responses that describe what the request did (2xx and the deterministic 4xx) are kept; 401, 403,
409 and 429 are not, so the client may retry once the condition has changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.db import connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer

from caseloop.accounts.permissions import Actor
from caseloop.api.auth import credential_of
from caseloop.api.errors import Conflict
from caseloop.api.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
_NOT_STORED = frozenset({401, 403, 409, 429})
_KEPT_HEADERS = ("Location",)


def _fingerprint(request) -> str:
    body = request.body
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _checked_key(raw: str) -> str:
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not raw.isprintable() or not raw.isascii():
        raise ValidationError(
            {HEADER: [f"Give 1 to {MAX_KEY_LENGTH} printable ASCII characters, e.g. a UUID."]}
        )
    return raw


def _replay(record: IdempotencyKey) -> HttpResponse:
    response = HttpResponse(
        record.response_body, status=record.response_status, content_type="application/json"
    )
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


# One round trip, no savepoint: the INSERT waits on the unique index while another transaction holds
# the same key, then inserts (that one rolled back) or does nothing (it committed).
_INSERT_SQL = """
INSERT INTO api_idempotencykey
    (organization_id, credential, key, fingerprint, method, path, response_body, response_headers, created_at)
VALUES (%s, %s, %s, %s, %s, %s, '', '{}', %s)
ON CONFLICT (organization_id, credential, key) DO NOTHING
RETURNING id
"""


def _claim(*, actor: Actor, credential: str, key: str, fingerprint: str, request) -> IdempotencyKey | None:
    """Insert the key's row, or return the committed row of an earlier request with that key."""
    values = [actor.organization.pk, credential, key, fingerprint, request.method, request.path[:500]]
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_SQL, [*values, timezone.now()])
            if cursor.fetchone() is not None:
                return None
        existing = IdempotencyKey.objects.filter(
            organization=actor.organization, credential=credential, key=key
        ).first()
        if existing is None:
            continue  # its request rolled back between our INSERT and SELECT: try again
        if existing.created_at < timezone.now() - KEY_TTL:
            IdempotencyKey.objects.filter(pk=existing.pk).delete()
            continue
        return existing
    raise Conflict(f"The {HEADER} {key!r} is being used by another request; retry shortly.")


def idempotent(request, actor: Actor, run: Callable[[], HttpResponse]) -> HttpResponse:
    """Run the POST handler ``run`` at most once per idempotency key (see the module docstring)."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return run()
    key = _checked_key(raw.strip())
    credential = credential_of(actor)
    fingerprint = _fingerprint(request)
    with transaction.atomic():
        existing = _claim(
            actor=actor, credential=credential, key=key, fingerprint=fingerprint, request=request
        )
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise Conflict(
                    f"The {HEADER} {key!r} was already used with a different request "
                    f"({existing.method} {existing.path}); use a new key for a new request."
                )
            return _replay(existing)
        response = run()
        if response.status_code >= 500 or response.status_code in _NOT_STORED:
            IdempotencyKey.objects.filter(
                organization=actor.organization, credential=credential, key=key
            ).delete()
            return response
        body = JSONRenderer().render(getattr(response, "data", None)) if hasattr(response, "data") else b""
        IdempotencyKey.objects.filter(organization=actor.organization, credential=credential, key=key).update(
            response_status=response.status_code,
            response_body=body.decode(),
            response_headers={name: response[name] for name in _KEPT_HEADERS if response.has_header(name)},
        )
        return response
