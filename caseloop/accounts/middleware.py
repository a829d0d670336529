"""Puts the signed-in user's current organisation and actor on the request.

The current organisation is kept in the session (the organisation switcher changes it) and is
always re-checked against the user's memberships, so a stale session can never reach another tenant.
"""

from __future__ import annotations

from caseloop.accounts.models import Membership
from caseloop.accounts.permissions import Actor

SESSION_KEY = "organization_id"


class OrganizationMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request.organization = None
        request.actor = None
        request.memberships = []
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            memberships = list(Membership.objects.filter(user=user).select_related("organization"))
            request.memberships = memberships
            wanted = request.session.get(SESSION_KEY)
            current = next((m for m in memberships if m.organization_id == wanted), None)
            if current is None and memberships:
                current = memberships[0]
                request.session[SESSION_KEY] = current.organization_id
            if current is not None:
                request.organization = current.organization
                request.actor = Actor(organization=current.organization, user=user, role=current.role)
        return self.get_response(request)
