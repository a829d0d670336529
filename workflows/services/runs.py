"""Running policies on cases: build the environment from the database, play one episode, and write
the Run, its Steps, the Decision and one audit event per step — all in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from caseloop.accounts.permissions import Actor
from caseloop.audit.services import audit_record
from training.loading import policy_load
from training.models import PolicyVersion, Stage
from workflows.engine.environment import Environment, Observation
from workflows.engine.policies import Policy, run_episode
from workflows.engine.rubric import Rubric as EngineRubric
from workflows.engine.spec import WorkflowSpec
from workflows.models import (
    Case,
    CaseStatus,
    Decision,
    ReferenceTable,
    Rubric,
    RubricVersion,
    Run,
    Step,
    WorkflowVersion,
)
from workflows.packs import Pack, get_pack
from workflows.services.decisions import decision_explanation, decision_route
from workflows.services.rubrics import rubric_version_freeze

logger = logging.getLogger(__name__)


def environment_parts(
    version: WorkflowVersion,
) -> tuple[WorkflowSpec, dict[str, list[dict]], dict, Pack | None]:
    """The spec, reference tables, pack tools and pack that make up a workflow version's environment."""
    workflow = version.workflow
    spec = WorkflowSpec.from_dict(version.spec)
    tables = {t.name: t.rows for t in ReferenceTable.objects.filter(workflow=workflow)}
    pack = get_pack(workflow.pack) if workflow.pack else None
    return spec, tables, (dict(pack.pack_tools) if pack else {}), pack


def default_rubric_version(workflow_version: WorkflowVersion) -> RubricVersion | None:
    rubric = Rubric.objects.filter(workflow=workflow_version.workflow).order_by("id").first()
    return rubric.latest_version if rubric else None


def environment_factory(
    workflow_version: WorkflowVersion, rubric_version: RubricVersion | None
) -> Callable[[], Environment]:
    """A factory of fresh environments for one workflow and rubric version (data loaded once)."""
    spec, tables, pack_tools, _ = environment_parts(workflow_version)
    rubric = EngineRubric.from_dict(rubric_version.definition, spec) if rubric_version else None
    return partial(Environment, spec, tables, rubric=rubric, pack_tools=pack_tools)


def _observation_summary(observation: Observation) -> dict[str, Any]:
    # The case fields are on the Case and tool results on their own steps: keep only what changes.
    return {
        "step_index": observation.step_index,
        "steps_left": observation.steps_left,
        "known": sorted(observation.revealed),
        "last_error": observation.last_error,
    }


@transaction.atomic
def run_policy(
    *,
    policy_version: PolicyVersion,
    case: Case,
    rubric_version: RubricVersion | None = None,
    seed: int = 0,
    environment: Environment | None = None,
    policy: Policy | None = None,
    evaluation: Any = None,
) -> Run:
    """Play one episode of ``policy_version`` on ``case`` and record it with its audit trail.

    ``environment`` and ``policy`` may be passed in already built when many cases are run in a row
    (evaluation); ``evaluation`` links the run to an EvaluationReport."""
    if policy_version.policy.organization_id != case.organization_id:
        raise ValidationError(
            {"policy_version": "The policy and the case belong to different organisations."}
        )
    workflow_version = case.workflow_version
    rubric_version = rubric_version or default_rubric_version(workflow_version)
    env = environment or environment_factory(workflow_version, rubric_version)()
    policy = policy or policy_load(policy_version, env.spec)
    trajectory = run_episode(env, policy, case.to_engine(), seed=seed)
    score = env.score
    run = Run.objects.create(
        organization_id=case.organization_id,
        case=case,
        workflow_version=workflow_version,
        rubric_version=rubric_version,
        policy_version=policy_version,
        evaluation=evaluation,
        seed=seed,
        status=Run.Status.FINISHED,
        total_reward=sum(step.reward for step in trajectory.steps),
        score=score.total if score else None,
        breakdown=[r.to_dict() for r in score.breakdown] if score else [],
        truncated=trajectory.truncated,
        finished_at=timezone.now(),
    )
    if rubric_version is not None:
        rubric_version_freeze(rubric_version)
    actor = Actor.for_policy(policy_version)
    steps = []
    for record in trajectory.steps:
        action = record.action
        steps.append(
            Step(
                run=run,
                index=record.index,
                kind=action.kind,
                action=action.name,
                arguments=action.arguments,
                observation=_observation_summary(record.observation_before),
                result=record.result,
                error=record.error or "",
                explanation=action.explanation,
                confidence=action.confidence,
                probabilities=action.probabilities,
                reward=record.reward,
            )
        )
        audit_record(
            actor=actor,
            verb="agent.decided" if action.kind == "decision" else "agent.tool_called",
            subject=run,
            payload={
                "case": case.pk,
                "step": record.index,
                "action": action.name,
                "arguments": action.arguments,
                "result": record.result,
                "error": record.error,
                "explanation": action.explanation,
                "confidence": action.confidence,
                "probabilities": action.probabilities,
            },
        )
    Step.objects.bulk_create(steps)
    decision = trajectory.decision
    if decision is not None:
        Decision.objects.create(
            organization_id=case.organization_id,
            case=case,
            run=run,
            policy_version=policy_version,
            name=decision.name,
            arguments=decision.arguments,
            explanation=decision_explanation(
                trajectory=trajectory, spec=env.spec, policy=policy, rubric=env.rubric
            ),
            confidence=decision.confidence,
        )
    return run


@transaction.atomic
def case_decide(*, case_id: int) -> Decision | None:
    """Decide a queued live case with its workflow's production policy version, route the decision
    by the version's stage (``decision_route``: review, or execution when autonomy allows), and let
    every shadow version decide the case too, for comparison only.

    Safe to run twice: the case row is locked and claimed only while it is still queued, so a
    redelivered task finds it decided and does nothing. A worker that dies mid-way rolls back and
    leaves the case queued for the redelivery.
    """
    from workflows.selectors import production_policy_version

    case = (
        Case.objects.select_for_update()
        .select_related("workflow", "workflow_version__workflow")
        .filter(pk=case_id, status=CaseStatus.QUEUED)
        .first()
    )
    if case is None:
        return None
    policy_version = production_policy_version(workflow=case.workflow)
    if policy_version is None:
        return None  # stays queued; decided once a version is promoted
    run = run_policy(policy_version=policy_version, case=case)
    case.status = CaseStatus.DECIDED
    case.save(update_fields=["status"])
    decision = getattr(run, "decision", None)
    if decision is None:
        audit_record(
            actor=Actor.for_policy(policy_version),
            verb="case.undecided",
            subject=case,
            payload={"run": run.pk, "reason": "the policy ran out of steps without deciding"},
        )
    else:
        decision = decision_route(decision=decision, stage=policy_version.stage)
    _decide_in_shadow(case)
    return decision


def _decide_in_shadow(case: Case) -> None:
    """Each shadow version decides the case as well; its decision is recorded, never executed.
    A shadow version must never cost production its decision: its failure is logged and audited,
    inside a savepoint that rolls back only its own writes."""
    from workflows.selectors import shadow_policy_versions

    for version in shadow_policy_versions(workflow=case.workflow):
        try:
            with transaction.atomic():
                run = run_policy(policy_version=version, case=case)
                shadow = getattr(run, "decision", None)
                if shadow is not None:
                    decision_route(decision=shadow, stage=Stage.SHADOW)
        except Exception as exc:  # any failure of an unproven version stays out of production's way
            logger.exception("shadow version %s failed on case %s", version.pk, case.pk)
            audit_record(
                actor=Actor.for_policy(version),
                verb="decision.shadow_failed",
                subject=case,
                payload={"policy_version": version.pk, "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
