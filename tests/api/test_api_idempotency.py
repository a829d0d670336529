"""Idempotency-Key on POST: replay without redoing the work, 409 on a different request, and the
guarantee under concurrent duplicates on the real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from caseloop.accounts.models import Role
from caseloop.api.models import IdempotencyKey
from caseloop.audit.models import AuditEvent
from tests.api.conftest import assert_error, key_client, member_client
from tests.factories import live_case_fields, make_actor, make_claims_workflow, make_organization
from workflows.models import Case

pytestmark = pytest.mark.django_db


def _post_case(client, workflow, key, **extra):
    headers = {name: extra.pop(name) for name in list(extra) if name.startswith("HTTP_")}
    body = {"workflow": workflow.pk, "fields": live_case_fields(workflow)[0], "external_id": "idem", **extra}
    return client.post("/api/v1/cases", body, format="json", HTTP_IDEMPOTENCY_KEY=key, **headers)


def test_the_same_key_and_body_replay_the_first_response_without_redoing_the_work(api, claims):
    workflow, _ = claims
    first = _post_case(api, workflow, "key-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    events = AuditEvent.objects.count()
    again = _post_case(api, workflow, "key-1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert Case.objects.filter(external_id="idem").count() == 1
    assert AuditEvent.objects.count() == events  # nothing was done the second time


def test_key_order_in_the_body_does_not_matter(api, claims):
    workflow, _ = claims
    fields = live_case_fields(workflow)[0]
    one = api.post(
        "/api/v1/cases",
        data=httpx.Request("POST", "/", json={"workflow": workflow.pk, "fields": fields}).content,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="order",
    )
    reordered = {"fields": dict(reversed(list(fields.items()))), "workflow": workflow.pk}
    two = api.post("/api/v1/cases", reordered, format="json", HTTP_IDEMPOTENCY_KEY="order")
    assert two["Idempotent-Replayed"] == "true" and two.json()["id"] == one.json()["id"]


def test_the_same_key_with_another_body_answers_409(api, claims):
    workflow, _ = claims
    assert _post_case(api, workflow, "key-2").status_code == 201
    response = _post_case(api, workflow, "key-2", external_id="other")
    assert_error(response, 409, "conflict")
    assert "different request" in response.json()["detail"]
    # the same key on another endpoint is another request too
    response = api.post(
        "/api/v1/workflows", {"name": "X", "pack": "claims"}, format="json", HTTP_IDEMPOTENCY_KEY="key-2"
    )
    assert_error(response, 409, "conflict")
    assert Case.objects.filter(external_id="other").count() == 0


def test_validation_failures_are_remembered_too(api, claims):
    workflow, _ = claims
    bad = {"workflow": workflow.pk, "fields": {"amount_claimed": "x"}}
    first = api.post("/api/v1/cases", bad, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    assert_error(first, 400, "validation_error")
    again = api.post("/api/v1/cases", bad, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_refusals_that_may_change_are_not_remembered(admin, api, claims):
    """A 403 from a service (an API key cannot review: reviews are given by people) is not stored,
    so the same key may be used again once the caller has what it needs."""
    response = api.post("/api/v1/reviews/claim", {}, format="json", HTTP_IDEMPOTENCY_KEY="claim")
    assert_error(response, 403, "permission_denied")
    assert not IdempotencyKey.objects.filter(key="claim").exists()


def test_keys_are_scoped_per_credential_and_organisation(admin, api, claims):
    workflow, _ = claims
    other_key = key_client(admin)
    assert _post_case(api, workflow, "shared").status_code == 201
    response = _post_case(other_key, workflow, "shared")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert Case.objects.filter(external_id="idem").count() == 2
    session = member_client(admin.organization, Role.ADMIN)
    assert "Idempotent-Replayed" not in _post_case(session, workflow, "shared")
    stranger = make_actor(make_organization(), Role.ADMIN)
    their_workflow, _ = make_claims_workflow(stranger)
    response = _post_case(key_client(stranger), their_workflow, "shared")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response


def test_expired_keys_do_the_work_again(api, claims):
    workflow, _ = claims
    first = _post_case(api, workflow, "old")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    again = _post_case(api, workflow, "old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert again.json()["id"] != first.json()["id"]


def test_malformed_keys_are_refused(api, claims):
    workflow, _ = claims
    errors = assert_error(_post_case(api, workflow, "x" * 256), 400, "validation_error")
    assert "Idempotency-Key" in errors
    assert_error(_post_case(api, workflow, "tab\there"), 400, "validation_error")


def _concurrently(n: int, send) -> list[httpx.Response]:
    barrier = threading.Barrier(n)
    responses: list[httpx.Response | BaseException] = [None] * n  # type: ignore[list-item]

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            responses[index] = send(index)
        except BaseException as exc:
            responses[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for response in responses:
        if isinstance(response, BaseException):
            raise response
    return responses  # type: ignore[return-value]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_do_the_work_once(live_server):
    admin = make_actor(make_organization(), Role.ADMIN)
    workflow, _ = make_claims_workflow(admin)
    secret = key_client(admin).secret
    body = {
        "workflow": workflow.pk,
        "fields": live_case_fields(workflow)[0],
        "external_id": "race",
        "split": "test",
    }
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "race-key"}

    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        responses = _concurrently(8, lambda _: client.post("/api/v1/cases", json=body, headers=headers))

    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 7
    assert Case.objects.filter(external_id="race").count() == 1
    assert (
        AuditEvent.objects.filter(verb="case.created", subject_id=str(responses[0].json()["id"])).count() == 1
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_different_bodies_under_one_key_get_one_success_and_conflicts(live_server):
    admin = make_actor(make_organization(), Role.ADMIN)
    workflow, _ = make_claims_workflow(admin)
    secret = key_client(admin).secret
    fields = live_case_fields(workflow)[0]

    def send(index: int) -> httpx.Response:
        body = {"workflow": workflow.pk, "fields": fields, "external_id": f"race-{index}", "split": "test"}
        return client.post(
            "/api/v1/cases",
            json=body,
            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "one"},
        )

    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        responses = _concurrently(6, send)

    assert sorted(r.status_code for r in responses) == [201] + [409] * 5, [r.text for r in responses]
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {"conflict"}
    assert Case.objects.filter(external_id__startswith="race-").count() == 1


def test_session_requests_with_csrf_and_an_idempotency_key(admin, claims):
    """The CSRF check parses the body before the view: the key's fingerprint must still see it."""
    workflow, _ = claims
    client = member_client(admin.organization, Role.ADMIN, csrf=True)
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    first = _post_case(client, workflow, "session-key", HTTP_X_CSRFTOKEN=token)
    assert first.status_code == 201, first.content
    again = _post_case(client, workflow, "session-key", HTTP_X_CSRFTOKEN=token)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
