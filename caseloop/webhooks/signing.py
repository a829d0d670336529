"""Webhook signatures: HMAC-SHA256 over the timestamp and the exact body bytes.

Header (``Caseloop-Signature``)::

    t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

The timestamp is signed with the body, so a captured request cannot be replayed after the
receiver's tolerance (5 minutes by default). More than one ``v1=`` may appear; a receiver accepts
the request when any of them matches. Pure Python, no Django: docs/webhooks.md carries a standalone
copy of :func:`verify_signature` for receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Caseloop-Signature"
EVENT_HEADER = "Caseloop-Event"
DELIVERY_HEADER = "Caseloop-Delivery"
ATTEMPT_HEADER = "Caseloop-Attempt"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def compute_signature(secret: str, timestamp: int, body: bytes | str) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + _as_bytes(body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes | str, *, timestamp: int | None = None) -> str:
    """The ``Caseloop-Signature`` header value for ``body`` signed now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},{SCHEME}={compute_signature(secret, t, body)}"


def parse_signature_header(header: str) -> tuple[int | None, list[str]]:
    """(timestamp, [v1 signatures]) of a header; (None, []) parts when missing or malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return None, []
        elif key == SCHEME and value:
            signatures.append(value)
    return timestamp, signatures


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance``
    seconds of now (either side). Compares in constant time."""
    timestamp, signatures = parse_signature_header(header)
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = compute_signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
