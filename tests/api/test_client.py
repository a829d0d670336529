"""The Python client (caseloop/client.py) against a live server on the real PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
import pytest

from caseloop.accounts.models import Role
from caseloop.audit.export import verify_export_file
from caseloop.client import (
    Caseloop,
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationFailed,
    WaitTimeout,
)
from tests.api.conftest import key_client
from tests.factories import live_case_fields, make_actor, make_claims_workflow, make_member, make_organization
from workflows.models import Case

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TINY = {
    "ppo": {
        "total_updates": 3,
        "num_envs": 16,
        "rollout_steps": 8,
        "minibatches": 4,
        "fit_cases": 64,
        "checkpoint_every": 3,
        "hidden_size": 16,
    },
    "evaluate_limit": 5,
}


@pytest.fixture
def setup(live_server):
    admin = make_actor(make_organization(), Role.ADMIN)
    workflow, _ = make_claims_workflow(admin, cases=100)
    secret = key_client(admin).secret
    with Caseloop(live_server.url, secret, max_retries=1) as client:
        yield client, admin, workflow, live_server


def test_submit_a_case_and_get_its_decision(setup):
    client, _, workflow, _ = setup
    assert client.ping()["ok"] is True
    fields = live_case_fields(workflow)[0]
    case = client.submit_case(workflow.pk, fields, external_id="c-1", decide="sync")
    assert case.status == "decided" and case.decision is not None
    assert case.decision.status == "pending_review" and not case.decision.final
    assert client.get_decision(case.decision.id).id == case.decision.id
    queued = client.submit_case(workflow.pk, fields, external_id="c-2")
    decision = client.wait_for_decision(queued.id, timeout=30)
    assert decision.case == queued.id
    with pytest.raises(WaitTimeout) as waited:
        client.wait_for_decision(queued.id, timeout=0.5, final=True)
    assert waited.value.last.status == "pending_review"
    assert [c.external_id for c in client.cases(external_id="c-1")] == ["c-1"]
    assert {d.case for d in client.decisions(workflow=workflow.pk)} >= {case.id, queued.id}


def test_bulk_submit_and_its_errors(setup):
    client, _, workflow, _ = setup
    items = [
        {"fields": f, "external_id": f"bulk-{i}"} for i, f in enumerate(live_case_fields(workflow, count=5))
    ]
    created = client.submit_cases(workflow.pk, items)
    assert [c.external_id for c in created] == [f"bulk-{i}" for i in range(5)]
    items[3] = {"fields": {**items[3]["fields"], "photos": "many"}}
    with pytest.raises(ValidationFailed) as failed:
        client.submit_cases(workflow.pk, items)
    assert list(failed.value.errors) == ["cases[3].fields.photos"]
    assert failed.value.status == 400 and failed.value.type == "validation_error"
    with pytest.raises(ValueError):
        client.submit_cases(workflow.pk, [])


def test_errors_map_to_exceptions(setup):
    client, admin, workflow, live_server = setup
    with pytest.raises(NotFound):
        client.get_case(10**12)
    reader = Caseloop(live_server.url, key_client(admin, ["cases:read"]).secret)
    with pytest.raises(PermissionDenied) as denied:
        reader.submit_case(workflow.pk, live_case_fields(workflow)[0])
    assert "cases:write" in denied.value.detail
    fields = live_case_fields(workflow)[0]
    client.submit_case(workflow.pk, fields, idempotency_key="same")
    with pytest.raises(Conflict):
        client.submit_case(workflow.pk, fields, external_id="different", idempotency_key="same")


def test_rate_limits_raise_with_retry_after(setup, settings):
    _, admin, _, live_server = setup

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"credential": "2/day"}}
    settings.CACHES = {"default": dict(settings.CACHES["default"], KEY_PREFIX=f"client-{uuid.uuid4().hex}")}
    limited = Caseloop(live_server.url, key_client(admin).secret, max_retries=0)
    limited.ping()
    limited.ping()
    with pytest.raises(RateLimited) as limited_error:
        limited.ping()
    assert limited_error.value.retry_after >= 1


class LoseFirstResponse(httpx.BaseTransport):
    """Delivers the first POST to the server, then pretends the answer was lost on the way back."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and not self.lost:
            response.read()
            self.lost += 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_a_retried_post_keeps_its_idempotency_key_and_is_not_done_twice(setup):
    _, admin, workflow, live_server = setup
    transport = LoseFirstResponse()
    client = Caseloop(live_server.url, key_client(admin).secret, transport=transport, max_retries=2)
    case = client.submit_case(workflow.pk, live_case_fields(workflow)[0], external_id="retried")
    assert transport.lost == 1
    assert Case.objects.filter(external_id="retried").count() == 1
    assert Case.objects.get(external_id="retried").pk == case.id


def test_a_reviewer_signs_in_claims_and_approves(setup):
    client, admin, workflow, live_server = setup
    case = client.submit_case(workflow.pk, live_case_fields(workflow)[0], decide="sync")
    user = make_member(admin.organization, Role.REVIEWER, username="rita")
    user.set_password("a long reviewer password")
    user.save()
    reviewer = Caseloop(live_server.url)
    reviewer.login("rita", "a long reviewer password")
    claimed = reviewer.claim_review(workflow=workflow.pk)
    assert claimed is not None and claimed.id == case.decision.id
    review = reviewer.submit_verdict(claimed.id, "approve", comment="fine")
    assert review.verdict == "approve" and review.reviewer == "rita"
    assert reviewer.claim_review() is None
    final = client.wait_for_decision(case.id, final=True, timeout=10)
    assert final.final and final.status == "executed"
    with pytest.raises(Exception) as failed:
        Caseloop(live_server.url).login("rita", "wrong")
    assert failed.value.status == 401


def test_training_launch_watch_and_audit_export(setup, tmp_path):
    client, _, workflow, _ = setup
    job = client.launch_training(workflow.pk, TINY)  # the embedded worker trains it on commit
    seen = []
    for state, metrics in client.watch_training(job.id, interval=0.2, timeout=120):
        seen += [m.update for m in metrics]
    assert state.status == "succeeded", state.error
    assert seen == [1, 2, 3]
    path = tmp_path / "audit.jsonl"
    head = client.export_audit(path)
    assert verify_export_file(path).ok
    verified = client.verify_audit()
    assert verified.ok and verified.head == head


def test_the_integration_example_runs_against_a_live_server(setup, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    _, admin, _, live_server = setup
    path = Path(__file__).resolve().parents[2] / "examples" / "integrate.py"
    spec = importlib.util.spec_from_file_location("integrate_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    secret = key_client(
        admin, ["workflows:read", "cases:read", "cases:write", "decisions:read", "audit:read"]
    ).secret
    code = example.main(["--url", live_server.url, "--key", secret, "--audit-out", str(tmp_path / "a.jsonl")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "why:" in out and "submitted 5 cases" in out and "cases[1].fields" in out
    assert "same head: True" in out
    assert Case.objects.filter(external_id__startswith="integrate-").count() == 6
