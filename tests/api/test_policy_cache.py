"""The per-process cache of loaded neural policies (training/loading.py) that live decisions use."""

from __future__ import annotations

import threading
from collections import OrderedDict

import pytest
from django.db import connection

from tests.factories import make_claims_workflow
from training import loading
from training.loading import policy_load
from training.services.jobs import training_job_launch, training_job_run
from workflows.engine.spec import WorkflowSpec

pytestmark = pytest.mark.django_db

TINY = {
    "ppo": {
        "total_updates": 2,
        "num_envs": 16,
        "rollout_steps": 8,
        "minibatches": 4,
        "fit_cases": 64,
        "checkpoint_every": 2,
        "hidden_size": 16,
    },
    "evaluate_limit": 5,
}


@pytest.fixture
def trained(admin):
    workflow, _ = make_claims_workflow(admin, cases=60)
    job = training_job_launch(actor=admin, workflow=workflow, config=TINY, enqueue=False)
    job = training_job_run(job_id=job.pk)
    assert job.status == "succeeded", job.error
    loading._neural_cache.policies = OrderedDict()  # the job's evaluation loaded it already
    return job.result_version, WorkflowSpec.from_dict(workflow.latest_version.spec)


def test_a_loaded_version_is_reused_and_new_weights_load_afresh(trained, monkeypatch):
    version, spec = trained
    reads = []
    real = loading._neural_policy_load
    monkeypatch.setattr(loading, "_neural_policy_load", lambda v, s: reads.append(v.pk) or real(v, s))
    first = policy_load(version, spec)
    assert policy_load(version, spec) is first
    assert reads == [version.pk]
    version.artifact_hash = "0" * 64  # other weights under the same version: never served stale
    with pytest.raises(Exception, match="recorded hash"):
        policy_load(version, spec)
    assert len(reads) == 2


def test_each_thread_gets_its_own_policy_object(trained):
    version, spec = trained
    mine = policy_load(version, spec)
    theirs = []

    def load_in_thread():
        try:
            theirs.append(policy_load(version, spec))
        finally:
            connection.close()

    thread = threading.Thread(target=load_in_thread)
    thread.start()
    thread.join()
    assert theirs[0] is not mine and type(theirs[0]) is type(mine)


def test_the_cache_is_bounded(trained, monkeypatch):
    version, spec = trained
    monkeypatch.setattr(loading, "NEURAL_CACHE_SIZE", 2)
    monkeypatch.setattr(loading, "_neural_policy_load", lambda v, s: object())
    for number in range(5):
        version.artifact_path = f"/nowhere/{number}"
        policy_load(version, spec)
    assert len(loading._neural_cache.policies) == 2
