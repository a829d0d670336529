"""Reviews over the API: a signed-in reviewer claims the next decision and gives a verdict."""

from __future__ import annotations

import pytest

from caseloop.accounts.models import Role
from tests.api.conftest import assert_error, key_client, member_client
from tests.factories import decide_live_case, live_case_fields
from workflows.models import Decision, DecisionStatus, Review

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(admin, claims):
    workflow, _ = claims
    return [decide_live_case(admin, workflow, f) for f in live_case_fields(workflow, count=2)]


def test_a_reviewer_claims_the_next_decision_and_approves_it(admin, pending):
    reviewer = member_client(admin.organization, Role.REVIEWER)
    claimed = reviewer.post("/api/v1/reviews/claim", {}, format="json")
    assert claimed.status_code == 200, claimed.content
    decision_id = claimed.json()["id"]
    assert decision_id in {d.pk for d in pending}
    assert claimed.json()["claim_expires_at"] is not None
    # claiming again hands back the same held claim
    assert reviewer.post("/api/v1/reviews/claim", {}, format="json").json()["id"] == decision_id
    response = reviewer.post(
        f"/api/v1/decisions/{decision_id}/reviews", {"verdict": "approve"}, format="json"
    )
    assert response.status_code == 201, response.content
    review = response.json()
    assert review["verdict"] == "approve" and review["reviewer"] == reviewer.user.username
    assert review["labelled_case"] is not None
    decision = reviewer.get(f"/api/v1/decisions/{decision_id}").json()
    assert decision["status"] == DecisionStatus.EXECUTED and decision["final"] is True
    listed = reviewer.get(f"/api/v1/decisions/{decision_id}/reviews").json()["results"]
    assert [r["id"] for r in listed] == [review["id"]]


def test_corrections_and_rejections(admin, pending, claims):
    reviewer = member_client(admin.organization, Role.REVIEWER)
    first = reviewer.post("/api/v1/reviews/claim", {"workflow": claims[0].pk}, format="json").json()["id"]
    errors = assert_error(
        reviewer.post(f"/api/v1/decisions/{first}/reviews", {"verdict": "reject"}, format="json"),
        400,
        "validation_error",
    )
    assert "reason" in errors
    response = reviewer.post(
        f"/api/v1/decisions/{first}/reviews",
        {
            "verdict": "correct",
            "corrected_decision": "deny",
            "corrected_arguments": {"reason_code": "late_report"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Decision.objects.get(pk=first).status == DecisionStatus.EXECUTED
    assert Decision.objects.get(pk=first).outcome["decision"] == "deny"
    second = reviewer.post("/api/v1/reviews/claim", {}, format="json").json()["id"]
    response = reviewer.post(
        f"/api/v1/decisions/{second}/reviews", {"verdict": "reject", "reason": "wrong payee"}, format="json"
    )
    assert response.status_code == 201
    assert Decision.objects.get(pk=second).status == DecisionStatus.REJECTED
    assert reviewer.post("/api/v1/reviews/claim", {}, format="json").status_code == 204


def test_a_verdict_needs_the_claim(admin, pending):
    reviewer = member_client(admin.organization, Role.REVIEWER)
    response = reviewer.post(
        f"/api/v1/decisions/{pending[0].pk}/reviews", {"verdict": "approve"}, format="json"
    )
    assert_error(response, 403, "permission_denied")
    assert "claim" in response.json()["detail"]
    assert not Review.objects.exists()


def test_a_claim_can_be_released(admin, pending):
    reviewer = member_client(admin.organization, Role.REVIEWER)
    decision_id = reviewer.post("/api/v1/reviews/claim", {}, format="json").json()["id"]
    response = reviewer.post(f"/api/v1/decisions/{decision_id}/release")
    assert response.status_code == 200 and response.json()["claim_expires_at"] is None
    assert_error(reviewer.post(f"/api/v1/decisions/{decision_id}/release"), 400, "validation_error")


def test_reviews_are_given_by_people_not_keys(admin, pending):
    client = key_client(admin, ["reviews:write", "decisions:read"])
    response = client.post("/api/v1/reviews/claim", {}, format="json")
    assert_error(response, 403, "permission_denied")
    assert "people" in response.json()["detail"]
    assert_error(
        client.post(f"/api/v1/decisions/{pending[0].pk}/reviews", {"verdict": "approve"}, format="json"),
        403,
        "permission_denied",
    )


def test_experts_and_auditors_do_not_review(admin, pending):
    for role in (Role.EXPERT, Role.AUDITOR):
        client = member_client(admin.organization, role)
        assert_error(client.post("/api/v1/reviews/claim", {}, format="json"), 403, "permission_denied")
