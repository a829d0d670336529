"""Writes for organisations, memberships and API keys. Each checks the actor and audits itself."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from caseloop.accounts.models import ApiKey, Membership, Organization, Role
from caseloop.accounts.permissions import SCOPES, Actor, require
from caseloop.audit.models import AuditChainHead
from caseloop.audit.services import audit_record

API_KEY_PREFIX = "cl_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@transaction.atomic
def organization_create(*, name: str, slug: str = "", created_by=None) -> Organization:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "An organisation needs a name."})
    slug = slugify(slug or name)
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"An organisation with the slug {slug!r} already exists."})
    organization = Organization.objects.create(name=name, slug=slug)
    AuditChainHead.objects.create(organization=organization)
    audit_record(
        actor=Actor.for_system(organization),
        verb="organization.created",
        subject=organization,
        payload={"name": name, "slug": slug, "created_by": getattr(created_by, "username", None)},
    )
    if created_by is not None:
        Membership.objects.create(user=created_by, organization=organization, role=Role.ADMIN)
    return organization


@transaction.atomic
def membership_set(*, actor: Actor, user, role: str) -> Membership:
    """Add ``user`` to the actor's organisation with ``role``, or change their role."""
    require(actor, "members.manage")
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    members = Membership.objects.select_for_update()
    current = members.filter(user=user, organization=actor.organization).first()
    if current is not None and current.role == Role.ADMIN and role != Role.ADMIN:
        _keep_an_admin(actor.organization, current, "role", "keeps the admin role: make another admin first")
    membership, created = Membership.objects.update_or_create(
        user=user, organization=actor.organization, defaults={"role": role}
    )
    audit_record(
        actor=actor,
        verb="membership.created" if created else "membership.changed",
        subject=membership,
        payload={"user": user.get_username(), "role": role},
    )
    return membership


def _keep_an_admin(organization: Organization, membership: Membership, field: str, refusal: str) -> None:
    """Refuse a change that would leave ``organization`` without an admin."""
    others = (
        Membership.objects.select_for_update()
        .filter(organization=organization, role=Role.ADMIN)
        .exclude(pk=membership.pk)
    )
    if not others.exists():
        raise ValidationError({field: f"The last admin of an organisation {refusal}."})


@transaction.atomic
def membership_remove(*, actor: Actor, user) -> None:
    require(actor, "members.manage")
    membership = Membership.objects.filter(user=user, organization=actor.organization).first()
    if membership is None:
        raise ValidationError({"user": f"{user.get_username()} is not a member."})
    if membership.role == Role.ADMIN:
        _keep_an_admin(actor.organization, membership, "user", "cannot be removed")
    audit_record(
        actor=actor, verb="membership.removed", subject=membership, payload={"user": user.get_username()}
    )
    membership.delete()


@transaction.atomic
def user_create_member(*, actor: Actor, username: str, password: str, role: str, email: str = ""):
    """Create a login and make it a member of the actor's organisation (used by admins and the quickstart)."""
    require(actor, "members.manage")
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": f"The username {username!r} is taken."})
    user = User.objects.create_user(username=username, password=password, email=email)
    membership_set(actor=actor, user=user, role=role)
    return user


@transaction.atomic
def api_key_create(*, actor: Actor, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create an API key. Returns the key and its secret; the secret is not stored and never shown again."""
    require(actor, "apikeys.manage")
    name = name.strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the key a name."
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        errors["scopes"] = f"Unknown scopes: {', '.join(unknown)}. Known: {', '.join(SCOPES)}."
    elif not scopes:
        errors["scopes"] = "Choose at least one scope."
    if errors:
        raise ValidationError(errors)
    prefix = secrets.token_hex(4)
    secret = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        organization=actor.organization,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        created_by=actor.user,
    )
    audit_record(
        actor=actor, verb="api_key.created", subject=key, payload={"name": name, "scopes": key.scopes}
    )
    return key, secret


@transaction.atomic
def api_key_revoke(*, actor: Actor, key: ApiKey) -> ApiKey:
    require(actor, "apikeys.manage")
    key = ApiKey.objects.select_for_update().get(pk=key.pk, organization=actor.organization)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(actor=actor, verb="api_key.revoked", subject=key, payload={"name": key.name})
    return key


def api_key_authenticate(secret: str) -> ApiKey | None:
    """The active key whose secret this is, or None. Compares hashes in constant time."""
    if not secret.startswith(API_KEY_PREFIX):
        return None
    prefix = secret[len(API_KEY_PREFIX) :].split("_", 1)[0]
    key = ApiKey.objects.select_related("organization").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not secrets.compare_digest(key.secret_hash, hash_secret(secret)):
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        # A minute's resolution is enough to see which keys are in use, and saves a write per request.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
