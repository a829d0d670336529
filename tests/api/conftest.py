"""Fixtures for the REST API tests: an organisation with an admin, API keys with chosen scopes,
and clients that authenticate with them."""

from __future__ import annotations

import itertools

import pytest
from rest_framework.test import APIClient

from caseloop.accounts.models import Role
from caseloop.accounts.permissions import SCOPES
from caseloop.accounts.services import api_key_create
from tests.factories import make_actor, make_claims_workflow, make_member, make_organization

_names = itertools.count(1)


def key_client(actor, scopes=SCOPES) -> APIClient:
    """An API client authenticating with a new key of ``actor``'s organisation holding ``scopes``."""
    _, secret = api_key_create(actor=actor, name=f"test key {next(_names)}", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.secret = secret
    return client


def member_client(organization, role: str, *, csrf: bool = False) -> APIClient:
    """An API client signed in (session) as a new member with ``role``; ``csrf`` enforces CSRF."""
    user = make_member(organization, role)
    client = APIClient(enforce_csrf_checks=csrf)
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def admin():
    """An admin actor in a fresh organisation."""
    return make_actor(make_organization(), Role.ADMIN)


@pytest.fixture
def api(admin) -> APIClient:
    """A client with an API key holding every scope."""
    return key_client(admin)


@pytest.fixture
def claims(admin):
    """The claims workflow with 40 generated cases and the expert rules policy in production."""
    workflow, version = make_claims_workflow(admin, cases=40)
    return workflow, version


@pytest.fixture
def other_admin():
    """An admin of another organisation."""
    return make_actor(make_organization(), Role.ADMIN)


def assert_error(response, status: int, type_: str) -> dict:
    """The response is ``status`` in the API's error shape with ``type``; returns its errors."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"type", "detail", "errors"}, body
    assert body["type"] == type_, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], dict)
    return body["errors"]


def make_autonomous(admin, workflow, *, confidence: float = 0.99):
    """A rules version that approves with ``confidence``, made autonomous the honest way: while
    supervised it decides one case, a reviewer approves it, and a one-review window is met."""
    from tests.factories import approve_rules, decide_live_case, live_case_fields, make_rules_version
    from training.services import policy_version_promote
    from workflows.services import review_claim_next, review_submit, workflow_review_settings_set

    workflow_review_settings_set(actor=admin, workflow=workflow, agreement_window=1, agreement_threshold=1.0)
    version = make_rules_version(
        admin, workflow, config=approve_rules(confidence=confidence), stage="supervised"
    )
    decide_live_case(admin, workflow, live_case_fields(workflow, seed=7)[0])
    reviewer = make_actor(admin.organization, Role.REVIEWER)
    claimed = review_claim_next(actor=reviewer, workflow=workflow)
    review_submit(actor=reviewer, decision=claimed, verdict="approve")
    return policy_version_promote(actor=admin, version=version, stage="autonomous")
