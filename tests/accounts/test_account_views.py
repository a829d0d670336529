"""Sign-in, the organisation switcher, and what the dashboard shows to whom."""

from __future__ import annotations

import pytest

from caseloop.accounts.models import Membership, Role
from tests.factories import make_actor, make_member, make_organization

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def test_sign_in_lands_on_the_dashboard_of_the_users_organisation(client):
    actor = make_actor(make_organization("Acme Mutual"), role=Role.REVIEWER)
    response = client.post("/login/", {"username": actor.user.username, "password": PASSWORD}, follow=True)
    assert response.status_code == 200
    assert b"Acme Mutual" in response.content
    assert b"reviewer" in response.content


def test_wrong_password_is_refused_with_a_message(client):
    actor = make_actor()
    response = client.post("/login/", {"username": actor.user.username, "password": "nope"})
    assert response.status_code == 200
    assert b"enter a correct username and password" in response.content


def test_dashboard_needs_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_switching_to_an_organisation_one_is_not_a_member_of_is_refused(client):
    actor = make_actor(make_organization("Mine"))
    other = make_organization("Theirs")
    client.force_login(actor.user)
    response = client.post("/organization/switch/", {"organization": other.pk})
    assert response.status_code == 400
    response = client.get("/")
    assert b"Theirs" not in response.content


def test_switching_between_own_organisations_changes_the_dashboard(client):
    first = make_organization("First Insurance")
    second = make_organization("Second Insurance")
    user = make_member(first, Role.ADMIN)
    Membership.objects.create(user=user, organization=second, role=Role.AUDITOR)
    client.force_login(user)
    client.get("/")
    response = client.post("/organization/switch/", {"organization": second.pk, "next": "/"}, follow=True)
    assert b"<h1>Second Insurance</h1>" in response.content
    assert b"auditor" in response.content
