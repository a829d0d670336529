"""Factories for test data, in one place. Each builds through the services, as the product does."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model

from caseloop.accounts.models import Membership, Organization, Role
from caseloop.accounts.permissions import Actor
from caseloop.accounts.services import organization_create

_counter = itertools.count(1)


def make_organization(name: str | None = None) -> Organization:
    n = next(_counter)
    return organization_create(name=name or f"Org {n}", slug=f"org-{n}-{(name or '').lower().replace(' ', '-')}")


def make_member(organization: Organization, role: str = Role.ADMIN, username: str | None = None):
    user = get_user_model().objects.create_user(
        username=username or f"{role}-{next(_counter)}", password="correct horse battery staple"
    )
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


def make_actor(organization: Organization | None = None, role: str = Role.ADMIN) -> Actor:
    organization = organization or make_organization()
    user = make_member(organization, role)
    return Actor(organization=organization, user=user, role=role)
