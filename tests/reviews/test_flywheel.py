"""The flywheel end to end: a supervised policy decides live cases, reviewers (simulated by the
pack's adjudication rules) correct its mistakes, a retraining job learns from the corrections, and
the new version agrees with reviewers more often on fresh live cases of the same kinds."""

from __future__ import annotations

import pytest

from caseloop.accounts.models import Role
from tests.factories import decide_live_case, live_case_fields, make_actor, make_claims_workflow
from training.models import JobStatus, Stage
from training.services import policy_version_promote
from training.services.jobs import training_job_launch, training_job_run
from workflows.models import Case, CaseSource, Split
from workflows.packs import get_pack
from workflows.selectors import outcomes_agree, policy_version_agreement
from workflows.services.reviews import review_claim_next, review_submit

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

LIVE_CASES = 60
# 400 updates: at 250, two of three seeds were still below the expert rules on validation (0.79-0.80
# against 0.91) and agreed with reviewers less (0.47 against 0.78); at 400, seeds 0-4 all passed
# the promotion gate and agreed more (0.82-0.92).
RETRAIN = {
    "ppo": {"total_updates": 400, "num_envs": 64, "rollout_steps": 8, "rollout_workers": 0},
    "include_review_cases": True,
    "evaluate_limit": 60,
}


def _review_everything(reviewer, workflow) -> tuple[int, int]:
    """Claim and review every pending decision as the adjudication rules would; (approved, corrected)."""
    pack = get_pack("claims")
    tables = {t.name: t.rows for t in workflow.tables.all()}
    approved = corrected = 0
    while (decision := review_claim_next(actor=reviewer, workflow=workflow)) is not None:
        truth = pack.adjudicate(decision.case.fields, tables)
        proposal = {"decision": decision.name, "arguments": decision.arguments}
        if outcomes_agree(proposal, {"decision": truth.decision, "arguments": truth.arguments}):
            review_submit(actor=reviewer, decision=decision, verdict="approve")
            approved += 1
        else:
            review_submit(
                actor=reviewer,
                decision=decision,
                verdict="correct",
                corrected_decision=truth.decision,
                corrected_arguments=truth.arguments,
                comment="adjudicated by the rule book",
            )
            corrected += 1
    return approved, corrected


def test_corrections_retrain_a_policy_that_agrees_more_with_reviewers():
    admin = make_actor(role=Role.ADMIN)
    reviewer = make_actor(admin.organization, role=Role.REVIEWER)
    workflow, rules_version = make_claims_workflow(admin, cases=400)

    for fields in live_case_fields(workflow, seed=501, count=LIVE_CASES):
        decide_live_case(admin, workflow, fields)
    approved, corrected = _review_everything(reviewer, workflow)
    assert approved + corrected == LIVE_CASES
    assert corrected > 0, "the expert rules should make some mistakes for reviewers to correct"
    assert (
        Case.objects.filter(workflow=workflow, source=CaseSource.REVIEW, split=Split.TRAIN).count()
        == LIVE_CASES
    )
    old_rate, old_n = policy_version_agreement(rules_version)
    assert old_n == LIVE_CASES

    job = training_job_launch(actor=admin, workflow=workflow, config=RETRAIN, enqueue=False)
    job = training_job_run(job_id=job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    new_version = policy_version_promote(
        actor=admin, version=job.result_version, stage=Stage.SUPERVISED, reason="retrained on corrections"
    )

    for fields in live_case_fields(workflow, seed=502, count=LIVE_CASES):
        decide_live_case(admin, workflow, fields)
    _review_everything(reviewer, workflow)
    new_rate, new_n = policy_version_agreement(new_version)
    assert new_n == LIVE_CASES
    print(f"\nagreement with reviewers: expert rules {old_rate:.1%} -> retrained PPO {new_rate:.1%}")
    assert new_rate > old_rate
