"""Signing in and seeing the organisation's work, in a real browser."""

from __future__ import annotations

import pytest

from caseloop.accounts.models import Role
from tests.factories import live_case_fields, make_actor, make_claims_workflow, make_member, make_organization
from workflows.services import case_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


def _sign_in(page, live_server, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{live_server.url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_reviewer_signs_in_and_sees_decisions_waiting_for_review(page, live_server):
    actor = make_actor(make_organization("Acme Insurance"))
    workflow, _ = make_claims_workflow(actor, cases=10)
    for fields in live_case_fields(workflow, count=3):
        case_create(actor=actor, workflow=workflow, fields=fields)  # decided eagerly on commit
    reviewer = make_member(actor.organization, Role.REVIEWER)

    _sign_in(page, live_server, reviewer.username)
    page.get_by_role("heading", name="Acme Insurance").wait_for()
    assert page.get_by_test_id("decisions-pending").inner_text() == "3"
    assert "Expert rules v1" in page.get_by_test_id("production-policy").inner_text()
    assert page.get_by_role("heading", name="Auto claims").is_visible()
    assert f"{reviewer.username} · reviewer" in page.locator(".who").inner_text()

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in to Caseloop").wait_for()


def test_wrong_password_keeps_the_user_out(page, live_server):
    actor = make_actor()
    _sign_in(page, live_server, actor.user.username, "wrong password")
    assert page.get_by_role("alert").is_visible()
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url


def test_another_organisations_work_is_not_shown(page, live_server):
    theirs = make_actor(make_organization("Other Mutual"))
    make_claims_workflow(theirs)
    mine = make_actor(make_organization("Mine Insurance"), role=Role.AUDITOR)
    _sign_in(page, live_server, mine.user.username)
    page.get_by_role("heading", name="Mine Insurance").wait_for()
    assert "Auto claims" not in page.content()
    assert "Other Mutual" not in page.content()
