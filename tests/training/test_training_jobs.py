"""Training jobs through the services: validation at launch, roles, a real run with metrics and a
candidate version, evaluation numbers that match the stored runs, promotion gates, cancel."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from tests.factories import make_actor, make_claims_workflow
from training.models import EvaluationReport, JobStatus, PolicyVersion, Stage, TrainingJob
from training.services import policy_version_promote
from training.services.evaluation import evaluation_recompute, policy_evaluate
from training.services.jobs import training_job_cancel, training_job_launch, training_job_run

pytestmark = pytest.mark.django_db

TINY = {
    "ppo": {
        "total_updates": 6,
        "num_envs": 16,
        "rollout_steps": 8,
        "minibatches": 4,
        "fit_cases": 64,
        "checkpoint_every": 3,
        "hidden_size": 32,
    },
    "evaluate_limit": 30,
}


@pytest.fixture
def claims():
    actor = make_actor(role=Role.ADMIN)
    workflow, rules_version = make_claims_workflow(actor, cases=160)
    return actor, workflow, rules_version


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"ppo": {"learning_rate": -0.1}}, "config.ppo.learning_rate"),
        ({"ppo": {"num_envs": 10, "rollout_steps": 3, "minibatches": 4}}, "config.ppo.minibatches"),
        ({"ppo": {"gamma": 1.5}}, "config.ppo.gamma"),
        ({"ppo": {"learning_rat": 0.1}}, "config.ppo.learning_rat"),
        ({"algorithm": "dqn"}, "config.algorithm"),
        ({"evaluate_limit": 0}, "config.evaluate_limit"),
    ],
)
def test_invalid_configs_are_refused_at_launch_with_the_field_named(claims, config, field):
    actor, workflow, _ = claims
    with pytest.raises(ValidationError) as exc:
        training_job_launch(actor=actor, workflow=workflow, config=config, enqueue=False)
    assert field in exc.value.message_dict, exc.value.message_dict
    assert not TrainingJob.objects.exists()


def test_a_workflow_without_train_cases_is_refused():
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor, cases=0)
    with pytest.raises(ValidationError) as exc:
        training_job_launch(actor=actor, workflow=workflow, config={}, enqueue=False)
    assert "workflow" in exc.value.message_dict


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.EXPERT, Role.AUDITOR])
def test_only_admins_launch_training_or_promote(claims, role):
    admin, workflow, rules_version = claims
    actor = make_actor(admin.organization, role=role)
    with pytest.raises(PermissionDenied):
        training_job_launch(actor=actor, workflow=workflow, config={}, enqueue=False)
    with pytest.raises(PermissionDenied):
        policy_version_promote(actor=actor, version=rules_version, stage=Stage.AUTONOMOUS)


def test_training_in_another_organisation_is_refused(claims):
    _, workflow, _ = claims
    stranger = make_actor(role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        training_job_launch(actor=stranger, workflow=workflow, config={}, enqueue=False)


def test_a_job_trains_records_metrics_creates_and_evaluates_a_candidate(claims):
    actor, workflow, rules_version = claims
    job = training_job_launch(actor=actor, workflow=workflow, config=TINY, enqueue=False)
    assert job.status == JobStatus.QUEUED
    seen = []
    finished = training_job_run(job_id=job.pk, on_update=lambda update, metrics: seen.append(update))
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert seen == list(range(1, 7))
    assert list(finished.metric_points.values_list("update", flat=True)) == seen
    assert "reward/mean" in finished.metric_points.last().values
    version = finished.result_version
    assert version.stage == Stage.CANDIDATE and version.artifact_hash
    reports = {r.split: r for r in version.evaluations.all()}
    assert set(reports) == {"validation", "test"}
    report = reports["validation"]
    assert report.n_cases == 24  # 15% of 160; evaluate_limit (30) does not bind
    assert {"random", "expert_rules", "reference_solver"} <= set(report.baselines)
    assert report.production_version == rules_version
    assert AuditEvent.objects.filter(verb="training_job.finished", subject_id=str(job.pk)).exists()
    # Running the task again (a redelivery) does nothing: the claim is a compare-and-swap.
    assert training_job_run(job_id=job.pk) is None


def test_evaluation_numbers_match_a_recomputation_from_the_stored_runs(claims):
    actor, _workflow, rules_version = claims
    report = policy_evaluate(actor=actor, version=rules_version, split="validation", with_baselines=False)
    assert report.runs.count() == report.n_cases > 0
    recomputed = evaluation_recompute(report)
    assert recomputed == report.metrics
    # And by hand, from the rows, without the shared summariser:
    runs = list(report.runs.select_related("case", "decision"))
    mean = sum(r.score for r in runs) / len(runs)
    assert report.metrics["score/mean"] == pytest.approx(mean)
    correct = sum(1 for r in runs if r.decision.name == r.case.expected["decision"])
    assert report.metrics["outcome/accuracy"] == pytest.approx(correct / len(runs))


def test_promotion_below_production_is_refused_unless_forced_with_a_reason(claims):
    actor, workflow, rules_version = claims
    job = training_job_launch(
        actor=actor,
        workflow=workflow,
        config=dict(TINY, ppo=dict(TINY["ppo"], total_updates=1)),
        enqueue=False,
    )
    candidate = training_job_run(job_id=job.pk).result_version
    report = candidate.evaluations.get(split="validation")
    assert report.metrics["score/mean"] < report.production["score/mean"]  # one update is not enough
    with pytest.raises(ValidationError) as exc:
        policy_version_promote(actor=actor, version=candidate, stage=Stage.SUPERVISED)
    assert "below production" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        policy_version_promote(actor=actor, version=candidate, stage=Stage.SUPERVISED, force=True)
    assert "reason" in exc.value.message_dict
    promoted = policy_version_promote(
        actor=actor, version=candidate, stage=Stage.SUPERVISED, force=True, reason="Pilot on low-value claims"
    )
    assert promoted.stage == Stage.SUPERVISED
    assert PolicyVersion.objects.get(pk=rules_version.pk).stage == Stage.RETIRED
    event = AuditEvent.objects.get(verb="policy_version.promoted", subject_id=str(candidate.pk))
    assert (
        event.payload["reason"] == "Pilot on low-value claims"
        and "below production" in event.payload["forced_over"]
    )


def test_cancelling_a_queued_job_stops_it_before_it_runs(claims):
    actor, workflow, _ = claims
    job = training_job_launch(actor=actor, workflow=workflow, config=TINY, enqueue=False)
    training_job_cancel(actor=actor, job=job)
    assert TrainingJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert training_job_run(job_id=job.pk) is None
    with pytest.raises(ValidationError):
        training_job_cancel(actor=actor, job=job)


def test_evaluating_an_empty_split_is_refused(claims):
    actor, _workflow, rules_version = claims
    with pytest.raises(ValidationError) as exc:
        policy_evaluate(actor=actor, version=rules_version, split="live")
    assert "split" in exc.value.message_dict
    assert not EvaluationReport.objects.exists()
