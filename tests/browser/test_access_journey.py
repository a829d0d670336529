"""A reviewer who opens admin and auditor addresses in the browser is refused by the server (403),
and the navigation never offered them."""

from __future__ import annotations

from pathlib import Path

import pytest

from caseloop.accounts.models import Membership, Role
from tests.factories import make_actor, make_claims_workflow, make_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def test_a_reviewer_gets_403_on_admin_pages(page, live_server):
    admin = make_actor(role=Role.ADMIN)
    _, rules = make_claims_workflow(admin)
    reviewer = make_member(admin.organization, Role.REVIEWER)

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(reviewer.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Reviews").is_visible()
    for hidden in ("Organisation", "Audit"):
        assert nav.get_by_role("link", name=hidden).count() == 0

    for url in (
        "/organization/members/",
        "/organization/api-keys/",
        "/training/new/",
        f"/training/versions/{rules.pk}/promote/?stage=retired",
        "/audit/",
        "/audit/export.jsonl",
    ):
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 403, (url, response.status)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "access-403.png"))

    # A form posted anyway (say from a stale page) is refused too, and changes nothing.
    page.goto(f"{live_server.url}/")
    status, text = page.evaluate(
        """async (url) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const body = new URLSearchParams({role: 'admin', csrfmiddlewaretoken: token});
            const r = await fetch(url, {method: 'POST', body});
            return [r.status, await r.text()];
        }""",
        f"{live_server.url}/organization/members/{reviewer.pk}/role/",
    )
    assert (
        status == 403 and "CSRF verification failed" not in text
    )  # refused for the role, not for a missing token
    assert Membership.objects.get(user=reviewer).role == Role.REVIEWER
