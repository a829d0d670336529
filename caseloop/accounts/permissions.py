"""The one permission helper: who is acting, and may they do this here.

Every view, API view and service entry point takes an :class:`Actor` and calls
:func:`require`. A user acts through their membership's role; an API key through its scopes;
a policy version or the system through the platform's own code paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied

from caseloop.accounts.models import ApiKey, Membership, Organization, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# permission -> (roles that hold it, API key scope that grants it)
PERMISSIONS: dict[str, tuple[frozenset[str], str]] = {
    "workflow.view": (frozenset(Role.values), "workflows:read"),
    "workflow.edit": (frozenset({Role.ADMIN, Role.EXPERT}), "workflows:write"),
    "rubric.edit": (frozenset({Role.ADMIN, Role.EXPERT}), "workflows:write"),
    "case.view": (frozenset(Role.values), "cases:read"),
    "case.create": (frozenset({Role.ADMIN, Role.EXPERT}), "cases:write"),
    "case.import": (frozenset({Role.ADMIN, Role.EXPERT}), "cases:write"),
    "decision.view": (frozenset(Role.values), "decisions:read"),
    "decision.decide": (frozenset({Role.ADMIN}), "decisions:write"),
    "review.verdict": (frozenset({Role.ADMIN, Role.REVIEWER}), "reviews:write"),
    "policy.view": (frozenset(Role.values), "policies:read"),
    "policy.edit": (frozenset({Role.ADMIN, Role.EXPERT}), "policies:write"),
    "policy.promote": (frozenset({Role.ADMIN}), "policies:promote"),
    "training.view": (frozenset(Role.values), "training:read"),
    "training.launch": (frozenset({Role.ADMIN}), "training:write"),
    "audit.view": (frozenset({Role.ADMIN, Role.AUDITOR}), "audit:read"),
    "members.manage": (frozenset({Role.ADMIN}), "admin"),
    "apikeys.manage": (frozenset({Role.ADMIN}), "admin"),
    # --- webhooks (caseloop.webhooks) ---
    "webhook.manage": (frozenset({Role.ADMIN}), "webhooks:write"),
}
SCOPES: tuple[str, ...] = tuple(sorted({scope for _, scope in PERMISSIONS.values()}))


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs an action, always within one organisation."""

    organization: Organization
    user: Any = None  # AbstractBaseUser; Any keeps the dataclass free of the auth model import
    role: str | None = None
    api_key: ApiKey | None = None
    policy_version: Any = None  # training.PolicyVersion
    system: bool = False

    @property
    def kind(self) -> str:
        if self.user is not None:
            return "user"
        if self.api_key is not None:
            return "api_key"
        if self.policy_version is not None:
            return "policy_version"
        return "system"

    @property
    def ref(self) -> str:
        """Stable identifier recorded in the audit trail."""
        match self.kind:
            case "user":
                return str(self.user.pk)
            case "api_key":
                return str(self.api_key.pk)  # type: ignore[union-attr]
            case "policy_version":
                return str(self.policy_version.pk)
        return "system"

    @property
    def label(self) -> str:
        match self.kind:
            case "user":
                return self.user.get_username()
            case "api_key":
                return f"api key {self.api_key.prefix}"  # type: ignore[union-attr]
            case "policy_version":
                return str(self.policy_version)
        return "system"

    def can(self, permission: str) -> bool:
        try:
            roles, scope = PERMISSIONS[permission]
        except KeyError:
            raise ValueError(f"unknown permission {permission!r}") from None
        if self.system or self.policy_version is not None:
            return True
        if self.user is not None:
            return self.role in roles
        if self.api_key is not None:
            return self.api_key.is_active and (scope in self.api_key.scopes or "admin" in self.api_key.scopes)
        return False

    @classmethod
    def for_system(cls, organization: Organization) -> Actor:
        return cls(organization=organization, system=True)

    @classmethod
    def for_policy(cls, policy_version: Any) -> Actor:
        return cls(organization=policy_version.policy.organization, policy_version=policy_version)


def actor_for_user(user: AbstractBaseUser, organization: Organization) -> Actor:
    """The user's actor in ``organization``; PermissionDenied when they are not a member."""
    membership = Membership.objects.filter(user=user, organization=organization).only("role").first()
    if membership is None:
        raise PermissionDenied("You are not a member of this organisation.")
    return Actor(organization=organization, user=user, role=membership.role)


def require(actor: Actor, permission: str) -> None:
    """Raise PermissionDenied unless ``actor`` holds ``permission``."""
    if not actor.can(permission):
        raise PermissionDenied(
            f"{actor.label} may not {permission.replace('.', ' ')} (role {actor.role or '-'})."
        )


def require_same_org(actor: Actor, obj: Any) -> None:
    """Raise PermissionDenied when ``obj`` belongs to another organisation than the actor's."""
    org_id = getattr(obj, "organization_id", None)
    if org_id != actor.organization.pk:
        raise PermissionDenied("That object belongs to another organisation.")
