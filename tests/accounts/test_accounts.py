"""Organisations, roles, API keys and the permission helper."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError

from caseloop.accounts.models import ApiKey, Membership, Role
from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.accounts.services import (
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    membership_remove,
    membership_set,
)
from caseloop.audit.models import AuditEvent
from caseloop.env import env_bool, env_broker, env_database, env_int, env_list
from tests.factories import make_actor, make_member, make_organization

pytestmark = pytest.mark.django_db


def test_api_key_secret_is_shown_once_and_stored_hashed():
    actor = make_actor()
    key, secret = api_key_create(actor=actor, name="claims system", scopes=["cases:write", "decisions:read"])
    stored = ApiKey.objects.get(pk=key.pk)
    assert secret not in (stored.secret_hash, stored.prefix)
    assert len(stored.secret_hash) == 64
    assert api_key_authenticate(secret) == key
    assert api_key_authenticate(secret + "x") is None
    assert AuditEvent.objects.filter(verb="api_key.created", subject_id=str(key.pk)).exists()


def test_revoked_api_key_no_longer_authenticates_or_grants():
    actor = make_actor()
    key, secret = api_key_create(actor=actor, name="k", scopes=["cases:write"])
    key_actor = Actor(organization=actor.organization, api_key=key)
    assert key_actor.can("case.create")
    assert not key_actor.can("training.launch")
    api_key_revoke(actor=actor, key=key)
    assert api_key_authenticate(secret) is None
    key.refresh_from_db()
    assert not Actor(organization=actor.organization, api_key=key).can("case.create")


def test_api_key_with_unknown_scope_is_refused_with_the_field_named():
    actor = make_actor()
    with pytest.raises(ValidationError) as exc:
        api_key_create(actor=actor, name="k", scopes=["cases:write", "root:everything"])
    assert "scopes" in exc.value.message_dict
    assert "root:everything" in exc.value.message_dict["scopes"][0]
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("role", [Role.EXPERT, Role.REVIEWER, Role.AUDITOR])
def test_only_admins_manage_api_keys_and_members(role):
    organization = make_organization()
    actor = make_actor(organization, role=role)
    with pytest.raises(PermissionDenied):
        api_key_create(actor=actor, name="k", scopes=["cases:write"])
    with pytest.raises(PermissionDenied):
        membership_set(actor=actor, user=make_member(organization, Role.REVIEWER), role=Role.ADMIN)


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        (Role.REVIEWER, "training.launch", False),
        (Role.REVIEWER, "review.verdict", True),
        (Role.AUDITOR, "case.create", False),
        (Role.AUDITOR, "audit.view", True),
        (Role.EXPERT, "rubric.edit", True),
        (Role.EXPERT, "policy.promote", False),
        (Role.ADMIN, "policy.promote", True),
    ],
)
def test_roles_hold_exactly_their_permissions(role, permission, allowed):
    actor = make_actor(role=role)
    assert actor.can(permission) is allowed
    if allowed:
        require(actor, permission)
    else:
        with pytest.raises(PermissionDenied):
            require(actor, permission)


def test_objects_of_another_organisation_are_refused():
    actor = make_actor()
    other = make_organization()
    key, _ = api_key_create(actor=make_actor(other), name="theirs", scopes=["cases:write"])
    with pytest.raises(PermissionDenied):
        require_same_org(actor, key)
    with pytest.raises(ApiKey.DoesNotExist):
        api_key_revoke(actor=actor, key=key)


def test_the_last_admin_cannot_be_removed_or_demoted():
    actor = make_actor()
    with pytest.raises(ValidationError) as removed:
        membership_remove(actor=actor, user=actor.user)
    assert "last admin" in str(removed.value.message_dict["user"])
    with pytest.raises(ValidationError) as demoted:
        membership_set(actor=actor, user=actor.user, role=Role.REVIEWER)
    assert "last admin" in str(demoted.value.message_dict["role"])
    assert Membership.objects.get(user=actor.user, organization=actor.organization).role == Role.ADMIN
    # With a second admin, the first may step down.
    second = make_member(actor.organization, Role.ADMIN)
    assert membership_set(actor=actor, user=actor.user, role=Role.REVIEWER).role == Role.REVIEWER
    assert Membership.objects.get(user=second, organization=actor.organization).role == Role.ADMIN


def test_env_readers_fail_loudly_on_bad_values():
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG", False, {"DEBUG": "ture"})
    assert env_bool("DEBUG", False, {"DEBUG": "on"}) is True
    with pytest.raises(ImproperlyConfigured, match="WORKERS"):
        env_int("WORKERS", 1, {"WORKERS": "two"})
    with pytest.raises(ImproperlyConfigured, match="ALLOWED_HOSTS"):
        env_list("ALLOWED_HOSTS", [], {"ALLOWED_HOSTS": " , "})
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env_database("DATABASE_URL", "", {"DATABASE_URL": "localhost:5432"})
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env_database("DATABASE_URL", "", {"DATABASE_URL": "mysql://u@h/db"})
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL"):
        env_broker("CELERY_BROKER_URL", "", {"CELERY_BROKER_URL": "amqp://guest@localhost"})


def test_settings_refuse_to_start_with_a_bad_environment():
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}}
    env.update({"DEBUG": "maybe", "DJANGO_SETTINGS_MODULE": "caseloop.settings"})
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr
    env.update({"DEBUG": "0", "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x"})
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
