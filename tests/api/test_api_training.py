"""Training jobs over the API: launch, progress and metrics, cancel."""

from __future__ import annotations

import pytest

from caseloop.accounts.models import Role
from tests.api.conftest import assert_error, member_client
from tests.factories import make_claims_workflow
from training.models import JobStatus, TrainingJob
from training.services.jobs import training_job_run

pytestmark = pytest.mark.django_db

TINY = {
    "ppo": {
        "total_updates": 4,
        "num_envs": 16,
        "rollout_steps": 8,
        "minibatches": 4,
        "fit_cases": 64,
        "checkpoint_every": 2,
        "hidden_size": 32,
    },
    "evaluate_limit": 10,
}


@pytest.fixture
def workflow(admin):
    workflow, _ = make_claims_workflow(admin, cases=120)
    return workflow


def test_launch_follow_and_read_the_metrics_of_a_job(api, workflow):
    response = api.post("/api/v1/training-jobs", {"workflow": workflow.pk, "config": TINY}, format="json")
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["status"] == "queued" and job["total_updates"] == 4 and job["progress"] == 0
    assert job["config"]["ppo"]["hidden_size"] == 32
    # a training worker runs it (here, in this process)
    training_job_run(job_id=job["id"])
    done = api.get(f"/api/v1/training-jobs/{job['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == 1.0 and done["result_version"] is not None
    metrics = api.get(f"/api/v1/training-jobs/{job['id']}/metrics").json()["results"]
    assert [m["update"] for m in metrics] == [1, 2, 3, 4]
    assert "reward/mean" in metrics[0]["values"]
    later = api.get(f"/api/v1/training-jobs/{job['id']}/metrics?after_update=2").json()["results"]
    assert [m["update"] for m in later] == [3, 4]
    listed = api.get(f"/api/v1/training-jobs?workflow={workflow.pk}&status=succeeded").json()["results"]
    assert [j["id"] for j in listed] == [job["id"]]
    version = api.get(f"/api/v1/policy-versions/{done['result_version']}").json()
    assert version["stage"] == "candidate" and version["artifact_hash"]


def test_invalid_configs_name_the_setting(api, workflow):
    response = api.post(
        "/api/v1/training-jobs", {"workflow": workflow.pk, "config": {"ppo": {"gamma": 1.5}}}, format="json"
    )
    assert "config.ppo.gamma" in assert_error(response, 400, "validation_error")
    assert not TrainingJob.objects.exists()


def test_cancel_a_queued_job(api, workflow):
    job = api.post("/api/v1/training-jobs", {"workflow": workflow.pk, "config": TINY}, format="json").json()
    response = api.post(f"/api/v1/training-jobs/{job['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == JobStatus.CANCELLED
    assert "status" in assert_error(
        api.post(f"/api/v1/training-jobs/{job['id']}/cancel"), 400, "validation_error"
    )


def test_only_admins_launch(admin, workflow):
    for role in (Role.EXPERT, Role.REVIEWER):
        client = member_client(admin.organization, role)
        response = client.post("/api/v1/training-jobs", {"workflow": workflow.pk}, format="json")
        assert_error(response, 403, "permission_denied")
        assert client.get("/api/v1/training-jobs").status_code == 200  # everyone may follow them
