"""Who is calling the API, as an :class:`~caseloop.accounts.permissions.Actor`.

Two credentials: an API key (``Authorization: Bearer cl_…``, checked first; the key's scopes
decide) and the browser's session (CSRF enforced by DRF's SessionAuthentication; the signed-in
member's role in their current organisation decides). Either way the actor belongs to exactly one
organisation and every query of the API is scoped to it.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

from caseloop.accounts.authentication import ApiKeyAuthentication
from caseloop.accounts.models import ApiKey
from caseloop.accounts.permissions import PERMISSIONS, Actor


def actor_for_request(request) -> Actor | None:
    """The authenticated request's actor, or None (no credential, or a user in no organisation)."""
    if isinstance(request.auth, ApiKey):
        key = request.auth
        return Actor(organization=key.organization, api_key=key)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # OrganizationMiddleware resolved the session's current organisation and the member's role.
        return getattr(request._request, "actor", None)
    return None


def credential_of(actor: Actor) -> str:
    """A stable name for the credential behind ``actor``: idempotency keys and throttles are per it."""
    if actor.api_key is not None:
        return f"api_key:{actor.api_key.pk}"
    if actor.user is not None:
        return f"user:{actor.user.pk}"
    return "system"


class ActorPermission(permissions.BasePermission):
    """Authenticated, acting in an organisation, and — when the view names one for the method —
    holding the permission (a role for people, a scope for keys). Services check again."""

    message = "You are not a member of any organisation."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        actor = actor_for_request(request)
        if actor is None:
            return False
        request.actor = actor
        needed = (getattr(view, "permissions", None) or {}).get(request.method)
        if needed and not actor.can(needed):
            what = needed.replace(".", " ")
            if actor.user is not None:
                self.message = f"{actor.label} may not {what} (role {actor.role})."
            else:
                self.message = (
                    f"{actor.label} may not {what}: the key lacks the scope {PERMISSIONS[needed][1]!r}."
                )
            return False
        return True


_KEY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class BearerKeyAuthentication(ApiKeyAuthentication):
    """The accounts' API key authentication, refusing malformed secrets before any query."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if header.startswith(f"{self.keyword} ".encode()):
            secret = header[len(self.keyword) + 1 :].strip()
            if not secret or len(secret) > 200 or not set(secret.decode("latin-1")) <= _KEY_CHARACTERS:
                raise exceptions.AuthenticationFailed("Malformed API key.")
        return super().authenticate(request)
