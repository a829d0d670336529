"""Sign-in lives in Django auth; these switch the current organisation among the user's memberships and
let an organisation's admins manage its members and API keys."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from caseloop.accounts import selectors
from caseloop.accounts.decorators import role_required
from caseloop.accounts.forms import ApiKeyCreateForm, MemberAddExistingForm, MemberCreateForm
from caseloop.accounts.middleware import SESSION_KEY
from caseloop.accounts.models import ApiKey, Membership, Role
from caseloop.accounts.services import (
    api_key_create,
    api_key_revoke,
    membership_remove,
    membership_set,
    user_create_member,
)


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


# --------------------------------------------------------------------------- organisation admin
# Members and roles, API keys (the secret shown once), and a link to the webhooks. Admins only:
# ``role_required`` here, and every service checks the role and the organisation again.


def _webhooks_url() -> str | None:
    try:
        return reverse("webhook-list")
    except NoReverseMatch:
        return None


def _members_page(request, *, create_form=None, existing_form=None, status: int = 200):
    page = Paginator(selectors.membership_list(actor=request.actor), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "accounts/members.html",
        {
            "page": page,
            "members": list(page.object_list),
            "roles": Role.choices,
            "create_form": create_form or MemberCreateForm(),
            "existing_form": existing_form or MemberAddExistingForm(),
            "webhooks_url": _webhooks_url(),
        },
        status=status,
    )


def _errors_into(form, exc: ValidationError, field_map: dict[str, str] | None = None) -> None:
    for key, messages_ in exc.message_dict.items():
        name = (field_map or {}).get(key, key)
        for message in messages_:
            form.add_error(name if name in form.fields else None, message)


@role_required("members.manage")
@require_http_methods(["GET", "POST"])
def members(request):
    if request.method == "GET":
        return _members_page(request)
    if "existing_username" in request.POST:
        existing = MemberAddExistingForm(request.POST)
        if existing.is_valid():
            user = (
                get_user_model().objects.filter(username=existing.cleaned_data["existing_username"]).first()
            )
            if user is None:
                existing.add_error("existing_username", "No login has that username.")
            else:
                try:
                    membership_set(
                        actor=request.actor, user=user, role=existing.cleaned_data["existing_role"]
                    )
                except ValidationError as exc:
                    _errors_into(existing, exc, {"role": "existing_role", "user": "existing_username"})
                else:
                    messages.success(request, f"{user.get_username()} is now a member.")
                    return redirect("organization-members")
        return _members_page(request, existing_form=existing, status=400)
    form = MemberCreateForm(request.POST)
    if form.is_valid():
        try:
            user = user_create_member(
                actor=request.actor,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                role=form.cleaned_data["role"],
                email=form.cleaned_data["email"],
            )
        except ValidationError as exc:
            _errors_into(form, exc)
        else:
            messages.success(
                request, f"{user.get_username()} can now sign in as {form.cleaned_data['role']}."
            )
            return redirect("organization-members")
    return _members_page(request, create_form=form, status=400)


def _membership(request, user_id: int) -> Membership:
    try:
        return selectors.membership_get(actor=request.actor, user_id=user_id)
    except Membership.DoesNotExist:
        raise Http404("No such member in this organisation.") from None


@role_required("members.manage")
@require_POST
def member_role(request, user_id: int):
    membership = _membership(request, user_id)
    role = request.POST.get("role", "")
    if (
        membership.role == Role.ADMIN
        and role != Role.ADMIN
        and selectors.admin_count(actor=request.actor) <= 1
    ):
        messages.error(
            request, "The last admin of an organisation keeps the admin role: make another admin first."
        )
        return redirect("organization-members")
    try:
        membership_set(actor=request.actor, user=membership.user, role=role)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{membership.user.get_username()} is now {role}.")
    return redirect("organization-members")


@role_required("members.manage")
@require_POST
def member_remove(request, user_id: int):
    membership = _membership(request, user_id)
    try:
        membership_remove(actor=request.actor, user=membership.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{membership.user.get_username()} is no longer a member.")
    return redirect("organization-members")


def _api_keys_page(request, *, form=None, created=None, secret: str | None = None, status: int = 200):
    page = Paginator(selectors.api_key_list(actor=request.actor), 50).get_page(request.GET.get("page"))
    response = render(
        request,
        "accounts/api_keys.html",
        {
            "page": page,
            "keys": list(page.object_list),
            "form": form or ApiKeyCreateForm(),
            "created": created,
            "secret": secret,
            "webhooks_url": _webhooks_url(),
        },
        status=status,
    )
    if secret:
        response["Cache-Control"] = "no-store"  # the one page that shows the secret is never cached
    return response


@role_required("apikeys.manage")
@require_http_methods(["GET", "POST"])
def api_keys(request):
    if request.method == "GET":
        return _api_keys_page(request)
    form = ApiKeyCreateForm(request.POST)
    if form.is_valid():
        try:
            key, secret = api_key_create(
                actor=request.actor, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"]
            )
        except ValidationError as exc:
            _errors_into(form, exc)
        else:
            # Rendered, not redirected: the secret exists only in this response.
            return _api_keys_page(request, created=key, secret=secret)
    return _api_keys_page(request, form=form, status=400)


@role_required("apikeys.manage")
@require_POST
def api_key_revoke_view(request, key_id: int):
    try:
        key = selectors.api_key_get(actor=request.actor, key_id=key_id)
    except ApiKey.DoesNotExist:
        raise Http404("No such API key in this organisation.") from None
    api_key_revoke(actor=request.actor, key=key)
    messages.success(request, f"API key {key.name} ({key.prefix}…) is revoked.")
    return redirect("organization-api-keys")
