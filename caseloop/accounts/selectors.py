"""Reads for the organisation admin pages: members and API keys of the actor's organisation."""

from __future__ import annotations

from django.db.models import QuerySet

from caseloop.accounts.models import ApiKey, Membership, Role
from caseloop.accounts.permissions import Actor, require


def membership_list(*, actor: Actor) -> QuerySet[Membership]:
    require(actor, "members.manage")
    return (
        Membership.objects.filter(organization=actor.organization)
        .select_related("user")
        .order_by("user__username", "id")
    )


def membership_get(*, actor: Actor, user_id: int) -> Membership:
    """The member's membership in the actor's organisation; Membership.DoesNotExist otherwise."""
    return membership_list(actor=actor).get(user_id=user_id)


def admin_count(*, actor: Actor) -> int:
    require(actor, "members.manage")
    return Membership.objects.filter(organization=actor.organization, role=Role.ADMIN).count()


def api_key_list(*, actor: Actor) -> QuerySet[ApiKey]:
    require(actor, "apikeys.manage")
    return (
        ApiKey.objects.filter(organization=actor.organization)
        .select_related("created_by")
        .order_by("revoked_at", "-created_at", "-id")
    )


def api_key_get(*, actor: Actor, key_id: int) -> ApiKey:
    """The organisation's key; ApiKey.DoesNotExist for another organisation's."""
    return api_key_list(actor=actor).get(pk=key_id)
