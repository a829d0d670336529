"""Launching language-model training jobs: the lm config is validated field by field at launch, and a
valid one queues a job of algorithm lm for the workflow's language-model policy. (No model is
trained here: tests/lm/test_lm_serving.py runs a job end to end.)"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from caseloop.accounts.models import Role
from tests.factories import make_actor, make_claims_workflow
from training.models import PolicyKind, TrainingJob
from training.services.jobs import job_config_build, training_job_launch

pytestmark = pytest.mark.django_db


@pytest.fixture
def claims():
    actor = make_actor(role=Role.ADMIN)
    workflow, _ = make_claims_workflow(actor, cases=40)
    return actor, workflow


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"algorithm": "lm", "lm": {"grpo": {"group_size": 1}}}, "config.lm.grpo.group_size"),
        ({"algorithm": "lm", "lm": {"grpo": {"engine": "tgi"}}}, "config.lm.grpo.engine"),
        ({"algorithm": "lm", "lm": {"sft": {"learning_rate": 0}}}, "config.lm.sft.learning_rate"),
        ({"algorithm": "lm", "lm": {"model": {"hidden_size": 100}}}, "config.lm.model.hidden_size"),
        ({"algorithm": "lm", "lm": {"model": {"base_model": "/no/such"}}}, "config.lm.model.base_model"),
        ({"algorithm": "lm", "lm": {"grpo": {"groupsize": 4}}}, "config.lm.grpo.groupsize"),
        ({"algorithm": "lm", "lm": {"epochs": 4}}, "config.lm.epochs"),
        ({"algorithm": "lm", "lm": "fast"}, "config.lm"),
        ({"algorithm": "lm", "ppo": {"num_envs": 4}}, "config.ppo"),
        ({"lm": {}}, "config.lm"),
    ],
)
def test_invalid_lm_configs_are_refused_at_launch_with_the_field_named(claims, config, field):
    actor, workflow = claims
    with pytest.raises(ValidationError) as exc:
        training_job_launch(actor=actor, workflow=workflow, config=config, enqueue=False)
    assert field in exc.value.message_dict, exc.value.message_dict
    assert not TrainingJob.objects.exists()


def test_a_valid_lm_config_queues_a_job_for_the_language_model_policy(claims):
    actor, workflow = claims
    job = training_job_launch(
        actor=actor,
        workflow=workflow,
        config={"algorithm": "lm", "lm": {"sft": {"steps": 7}, "grpo": {"steps": 3}}},
        enqueue=False,
    )
    assert job.algorithm == "lm" and job.total_updates == 10
    assert job.policy.kind == PolicyKind.LM and job.policy.name == "Language-model policy"
    assert job.config["lm"]["grpo"]["group_size"] == 4 and "ppo" not in job.config
    # The stored config builds the same config again (what the worker does).
    assert job_config_build(job.config).lm.total_steps == 10
    # A PPO job cannot train the language-model policy, and the other way round.
    with pytest.raises(ValidationError) as exc:
        training_job_launch(
            actor=actor, workflow=workflow, config={}, policy_name="Language-model policy", enqueue=False
        )
    assert "policy_name" in exc.value.message_dict
