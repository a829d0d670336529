"""View decorators built on the one permission helper."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from caseloop.accounts.permissions import require


def role_required(permission: str):
    """Require sign-in, a current organisation, and ``permission`` for the signed-in member."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.actor is None:
                raise PermissionDenied("You are not a member of any organisation.")
            require(request.actor, permission)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
