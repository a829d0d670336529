"""Sign-in lives in Django auth; this switches the current organisation among the user's memberships."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from caseloop.accounts.middleware import SESSION_KEY


@login_required
@require_POST
def organization_switch(request):
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError:
        return HttpResponseBadRequest("organization: expected the id of one of your organisations.")
    if not any(m.organization_id == organization_id for m in request.memberships):
        return HttpResponseBadRequest("organization: you are not a member of that organisation.")
    request.session[SESSION_KEY] = organization_id
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "home"
    return redirect(target)
