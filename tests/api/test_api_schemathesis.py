"""Property-based conformance of the whole API with its own OpenAPI schema (schemathesis).

Every operation of the live schema is called with generated requests — schema-valid ones against
random ids and against the seeded objects, and schema-invalid ones — using an API key with every
scope. No answer may be a 5xx; every answer must be documented (status code, content type,
headers) and match its response schema. Bounded for CI: a few examples per operation, about a
minute on two cores.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from caseloop.api import base as api_base
from caseloop.audit.models import AuditEvent
from caseloop.webhooks.services import webhook_create
from tests.api.conftest import key_client
from tests.factories import decide_live_case, live_case_fields, make_claims_workflow
from training.services.jobs import training_job_launch
from workflows.models import Rubric

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {"random ids": 5, "seeded ids": 8, "invalid": 4}


@pytest.fixture
def in_process_requests():
    """Requests go through the WSGI app in this thread: keep the test's connection (and transaction)
    open between them, as Django's test client does."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(admin, monkeypatch, settings, in_process_requests):
    """One organisation with a workflow, its rubric, cases, a decision, a queued training job and a
    webhook."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"credential": "100000/min"},
    }
    monkeypatch.setattr(api_base, "MAX_WAIT_SECONDS", 0.05)  # long-polls answer at once here
    workflow, version = make_claims_workflow(admin, cases=24)
    decision = decide_live_case(admin, workflow, live_case_fields(workflow)[0])
    job = training_job_launch(
        actor=admin, workflow=workflow, config={"ppo": {"total_updates": 2}}, enqueue=False
    )
    rubric = Rubric.objects.get(workflow=workflow)
    webhook, _ = webhook_create(
        actor=admin, url="https://hooks.example.com/caseloop", events=["case.created"]
    )
    return {
        "secret": key_client(admin).secret,
        "path_parameters": {
            "workflow_id": workflow.pk,
            "rubric_id": rubric.pk,
            "number": 1,
            "case_id": decision.case_id,
            "decision_id": decision.pk,
            "policy_id": version.policy_id,
            "version_id": version.pk,
            "job_id": job.pk,
            "webhook_id": webhook.pk,
        },
    }


def test_every_operation_conforms_to_the_schema(seeded):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    headers = {"Authorization": f"Bearer {seeded['secret']}"}
    failures: list[str] = []
    succeeded: set[str] = set()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        params = {p.name for p in operation.path_parameters}
        runs = {
            "random ids": operation.as_strategy(GenerationMode.POSITIVE),
            "invalid": operation.as_strategy(GenerationMode.NEGATIVE),
        }
        if params:
            fixed = {name: seeded["path_parameters"][name] for name in params}
            runs["seeded ids"] = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed)
        for label, strategy in runs.items():

            @settings(
                max_examples=EXAMPLES[label],
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def call(case):
                response = case.call_and_validate(headers=headers, checks=CHECKS)
                if response.status_code < 300:
                    succeeded.add(operation.label)

            try:
                call()
            except Exception as exc:  # collect every operation's failure, then report them together
                failures.append(f"{operation.label} ({label}): {exc}"[:3000])
    assert operations >= 35, operations
    assert not failures, "\n\n".join(failures)
    print(f"{len(succeeded)} of {operations} operations answered 2xx at least once:", sorted(succeeded))
    # generated requests got past validation to the services on most operations, not just 4xx
    assert len(succeeded) >= operations // 2, sorted(succeeded)
    # the requests reached the services: the seeded organisation's trail grew and still verifies
    assert AuditEvent.objects.count() > 0
