"""Evaluating a policy version on a split, side by side with the baselines and production.

The evaluated version's episodes are stored as Runs (with their Steps and audit events) linked to
the report, and the report's numbers are computed from those stored runs, so anyone can recompute
them. Baselines and the production version are scored in memory on the same cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.services import audit_record
from training.loading import policy_load
from training.models import EvaluationReport, PolicyVersion
from training.rl.evaluate import evaluate_policy
from training.rl.summary import EpisodeSummary, summarise_episodes
from workflows.engine.environment import CaseData, Environment
from workflows.engine.policies import EXPLOIT_POLICIES, Policy, RandomPolicy, RulesPolicy
from workflows.models import Case, RubricVersion, Run, Split
from workflows.selectors import production_policy_version
from workflows.services.runs import default_rubric_version, environment_factory, environment_parts, run_policy

EVALUATION_SPLITS = (Split.VALIDATION, Split.TEST)


def evaluation_cases(*, workflow, split: str, limit: int | None = None) -> list[Case]:
    cases = Case.objects.filter(workflow=workflow, split=split, expected__isnull=False).order_by("id")
    return list(cases[:limit] if limit else cases)


def episode_summary_from_run(run: Run) -> EpisodeSummary:
    """The stored run as the evaluator's episode record (the recomputation path)."""
    decision = getattr(run, "decision", None)
    return EpisodeSummary(
        score=run.score,
        breakdown=run.breakdown,
        length=run.steps.count(),
        truncated=run.truncated,
        decision=decision.name if decision is not None else None,
        arguments=decision.arguments if decision is not None else {},
        expected=run.case.expected,
    )


def baseline_policies(workflow, spec, pack, *, seed: int = 0) -> dict[str, Policy]:
    """What every version is compared with: random, each exploit, the expert rules, the reference."""
    policies: dict[str, Policy] = {"random": RandomPolicy(spec, seed=seed)}
    for name, factory in EXPLOIT_POLICIES.items():
        policies[name] = factory(spec)
    if pack is not None:
        policies["expert_rules"] = RulesPolicy(spec, pack.rules_dict)
        policies["reference_solver"] = pack.solver(spec)
    return policies


def _score_in_memory(
    policies: dict[str, Policy], factory: Callable[[], Environment], cases: Sequence[CaseData]
) -> dict[str, dict[str, Any]]:
    return {name: evaluate_policy(policy, factory, cases) for name, policy in policies.items()}


@transaction.atomic
def policy_evaluate(
    *,
    actor: Actor,
    version: PolicyVersion,
    split: str,
    rubric_version: RubricVersion | None = None,
    limit: int | None = None,
    with_baselines: bool = True,
) -> EvaluationReport:
    """Score ``version`` on the labelled cases of ``split``; store the runs and the report."""
    require(actor, "policy.view")
    version = PolicyVersion.objects.select_related("policy__workflow").get(pk=version.pk)
    require_same_org(actor, version.policy)
    workflow = version.policy.workflow
    if split not in EVALUATION_SPLITS and split != Split.TRAIN:
        raise ValidationError({"split": f"Evaluate on train, validation or test, not {split!r}."})
    cases = evaluation_cases(workflow=workflow, split=split, limit=limit)
    if not cases:
        raise ValidationError({"split": f"The {split} split of {workflow.name} has no labelled cases."})
    workflow_version = workflow.latest_version
    rubric_version = rubric_version or default_rubric_version(workflow_version)
    if rubric_version is None:
        raise ValidationError({"rubric_version": f"{workflow.name} has no rubric to score with."})
    spec, _, _, pack = environment_parts(workflow_version)
    factory = environment_factory(workflow_version, rubric_version)
    report = EvaluationReport.objects.create(
        organization=actor.organization,
        policy_version=version,
        split=split,
        rubric_version=rubric_version,
        n_cases=len(cases),
        metrics={},
    )
    env = factory()
    policy = policy_load(version, spec)
    runs = [
        run_policy(
            policy_version=version,
            case=case,
            rubric_version=rubric_version,
            environment=env,
            policy=policy,
            evaluation=report,
        )
        for case in cases
    ]
    report.metrics = summarise_episodes([episode_summary_from_run(run) for run in runs])
    engine_cases = [case.to_engine() for case in cases]
    if with_baselines:
        report.baselines = _score_in_memory(baseline_policies(workflow, spec, pack), factory, engine_cases)
    production = production_policy_version(workflow=workflow)
    if production is not None and production.pk != version.pk:
        report.production_version = production
        report.production = evaluate_policy(policy_load(production, spec), factory, engine_cases)
    report.save(update_fields=["metrics", "baselines", "production", "production_version"])
    audit_record(
        actor=actor,
        verb="policy_version.evaluated",
        subject=version,
        payload={
            "report": report.pk,
            "split": split,
            "cases": len(cases),
            "score_mean": report.metrics.get("score/mean"),
            "outcome_accuracy": report.metrics.get("outcome/accuracy"),
        },
    )
    return report


def evaluation_recompute(report: EvaluationReport) -> dict[str, Any]:
    """The report's metrics recomputed from its stored runs (for auditors and tests)."""
    runs = report.runs.select_related("case", "decision").order_by("case_id")
    return summarise_episodes([episode_summary_from_run(run) for run in runs])
