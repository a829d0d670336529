"""Running policies on cases: build the environment from the database, play one episode, and write
the Run, its Steps, the Decision and one audit event per step — all in one transaction.

A live case whose production version is a language model served by vLLM waits for the model
when the server cannot be reached (status ``waiting``, audited ``case.waiting_for_model``);
:func:`cases_requeue_waiting` (Celery beat) queues it again once the server answers, so no
case is lost while a model server restarts."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from caseloop.accounts.permissions import Actor
from caseloop.audit.services import AuditEntry, audit_deferred, audit_record, audit_record_many
from training.loading import policy_load, policy_server_ready
from training.models import PolicyVersion, Stage
from training.rl.lm.client import ModelServerUnavailable
from training.rl.lm.textio import PARSE_ERROR
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
    Split,
    Step,
    Workflow,
    WorkflowVersion,
)
from workflows.packs import Pack, get_pack
from workflows.services.decisions import decision_explanation, decision_route
from workflows.services.rubrics import rubric_version_freeze

logger = logging.getLogger(__name__)

# The audit verb of each step kind; a language model's unparsable line is a step of its own.
_STEP_VERBS = {"decision": "agent.decided", PARSE_ERROR: "agent.parse_error"}


# --- environment parts cache (live decisions, evaluation, previews) ---
# Loading a version's spec and reference tables from the database took a sixth of a sync decision
# (bench/api.py --profile), and the claims tools index a table by the identity of its rows, so a
# fresh copy per decision re-indexed it every time. The parts are kept per process, keyed by the
# version's spec and every table's id, name and content hash (the only write path sets the hash with
# the rows), so an edited, added or deleted table loads afresh. Shared between threads: the engine
# only reads them.
ENVIRONMENT_CACHE_SIZE = 16
_environment_cache: OrderedDict[tuple, tuple[WorkflowSpec, dict[str, list[dict]]]] = OrderedDict()
_environment_lock = threading.Lock()


def environment_parts(
    version: WorkflowVersion,
) -> tuple[WorkflowSpec, dict[str, list[dict]], dict, Pack | None]:
    """The spec, reference tables, pack tools and pack that make up a workflow version's environment."""
    workflow = version.workflow
    signature = tuple(
        ReferenceTable.objects.filter(workflow=workflow)
        .order_by("name")
        .values_list("pk", "name", "content_hash")
    )
    key = (workflow.pk, json.dumps(version.spec, sort_keys=True), signature)
    with _environment_lock:
        parts = _environment_cache.get(key)
        if parts is not None:
            _environment_cache.move_to_end(key)
    if parts is None:
        spec = WorkflowSpec.from_dict(version.spec)
        loaded = list(ReferenceTable.objects.filter(workflow=workflow).order_by("name"))
        parts = (spec, {t.name: t.rows for t in loaded})
        # Keyed by what was loaded: a table written between the two reads is not cached as the old one.
        key = (workflow.pk, key[1], tuple((t.pk, t.name, t.content_hash) for t in loaded))
        with _environment_lock:
            _environment_cache[key] = parts
            while len(_environment_cache) > ENVIRONMENT_CACHE_SIZE:
                _environment_cache.popitem(last=False)
    spec, tables = parts
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
    live: bool = False,
) -> Run:
    """Play one episode of ``policy_version`` on ``case`` and record it with its audit trail.

    ``environment`` and ``policy`` may be passed in already built when many cases are run in a row
    (evaluation); ``evaluation`` links the run to an EvaluationReport. ``live`` runs a language-model
    version through its model server (``policy_load``); ModelServerUnavailable then propagates and
    the transaction writes nothing."""
    if policy_version.policy.organization_id != case.organization_id:
        raise ValidationError(
            {"policy_version": "The policy and the case belong to different organisations."}
        )
    workflow_version = case.workflow_version
    rubric_version = rubric_version or default_rubric_version(workflow_version)
    env = environment or environment_factory(workflow_version, rubric_version)()
    policy = policy or policy_load(policy_version, env.spec, live=live)
    trajectory = run_episode(env, policy, case.to_engine(), seed=seed)
    score = env.score
    decision = trajectory.decision
    # Computed before the first audit event: that event locks the organisation's chain head until
    # commit, and the explanation (feature attributions of a neural policy) is the costly part.
    explanation = (
        decision_explanation(trajectory=trajectory, spec=env.spec, policy=policy, rubric=env.rubric)
        if decision is not None
        else None
    )
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
    entries = []
    for record in trajectory.steps:
        action = record.action
        # A parse error's own reason says more than the engine's "unknown action kind".
        error = action.explanation if action.kind == PARSE_ERROR else record.error
        steps.append(
            Step(
                run=run,
                index=record.index,
                kind=action.kind,
                action=action.name,
                arguments=action.arguments,
                observation=_observation_summary(record.observation_before),
                result=record.result,
                error=error or "",
                explanation=action.explanation,
                confidence=action.confidence,
                probabilities=action.probabilities,
                reward=record.reward,
            )
        )
        entries.append(
            AuditEntry(
                _STEP_VERBS.get(action.kind, "agent.tool_called"),
                run,
                {
                    "case": case.pk,
                    "step": record.index,
                    "action": action.name,
                    "arguments": action.arguments,
                    "result": record.result,
                    "error": error,
                    "explanation": action.explanation,
                    "confidence": action.confidence,
                    "probabilities": action.probabilities,
                },
            )
        )
    audit_record_many(actor=actor, entries=entries)
    Step.objects.bulk_create(steps)
    if decision is not None:
        Decision.objects.create(
            organization_id=case.organization_id,
            case=case,
            run=run,
            policy_version=policy_version,
            name=decision.name,
            arguments=decision.arguments,
            explanation=explanation,
            confidence=decision.confidence,
        )
    return run


def case_decide(*, case_id: int) -> Decision | None:
    """Decide a queued live case with its workflow's production policy version, route the decision
    by the version's stage (``decision_route``: review, or execution when autonomy allows), and let
    every shadow version decide the case too, for comparison only.

    Safe to run twice: the case row is locked and claimed only while it is still queued, so a
    redelivered task finds it decided and does nothing. A worker that dies mid-way rolls back and
    leaves the case queued for the redelivery. When a language-model version's server cannot be
    reached, the attempt rolls back and the case waits for the model (:func:`case_wait_for_model`).
    """
    try:
        return _case_decide(case_id=case_id)
    except ModelServerUnavailable as exc:
        case_wait_for_model(case_id=case_id, reason=str(exc))
        return None


def _case_decide(*, case_id: int) -> Decision | None:
    # The decision's audit events are appended when it is made, not as it goes: the organisation's
    # chain head is locked from there to the commit only (see audit_deferred).
    with transaction.atomic(), audit_deferred():
        from workflows.selectors import production_policy_version

        case = (
            # of=("self",): lock the case row only. Locking the joined workflow row too deadlocked with
            # concurrent case creation (its deferred foreign-key check) holding the audit chain's lock.
            Case.objects.select_for_update(of=("self",))
            .select_related("workflow", "workflow_version__workflow")
            .filter(pk=case_id, status=CaseStatus.QUEUED)
            .first()
        )
        if case is None:
            return None
        policy_version = production_policy_version(workflow=case.workflow)
        if policy_version is None:
            return None  # stays queued; decided once a version is promoted
        run = run_policy(policy_version=policy_version, case=case, live=True)
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
                run = run_policy(policy_version=version, case=case, live=True)
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


@transaction.atomic
def case_wait_for_model(*, case_id: int, reason: str) -> bool:
    """Park a queued case whose model server is unreachable: status ``waiting`` (shown as "Waiting
    for model"), audited with the reason. False when the case was no longer queued."""
    from workflows.selectors import production_policy_version

    case = (
        Case.objects.select_for_update(of=("self",))  # the case row only, as in _case_decide
        .select_related("organization", "workflow")
        .filter(pk=case_id, status=CaseStatus.QUEUED)
        .first()
    )
    if case is None:
        return False
    case.status = CaseStatus.WAITING
    case.save(update_fields=["status"])
    version = production_policy_version(workflow=case.workflow)
    audit_record(
        actor=Actor.for_system(case.organization),
        verb="case.waiting_for_model",
        subject=case,
        payload={"policy_version": version.pk if version else None, "reason": reason[:500]},
    )
    return True


def cases_requeue_waiting(*, limit: int = 500) -> list[int]:
    """Queue again, for ``decide_case``, the cases waiting for a model whose server now answers and
    serves the production version (Celery beat runs this). Returns the ids queued."""
    from workflows.selectors import production_policy_version
    from workflows.tasks import decide_case

    requeued: list[int] = []
    waiting = Case.objects.filter(status=CaseStatus.WAITING)
    for workflow in Workflow.objects.filter(pk__in=waiting.values("workflow_id")).select_related(
        "organization"
    ):
        version = production_policy_version(workflow=workflow)
        if version is None or not policy_server_ready(version):
            continue
        with transaction.atomic():
            cases = list(
                Case.objects.select_for_update(skip_locked=True)
                .filter(workflow=workflow, status=CaseStatus.WAITING)
                .order_by("id")[:limit]
            )
            for case in cases:
                case.status = CaseStatus.QUEUED
                case.save(update_fields=["status"])
                audit_record(
                    actor=Actor.for_system(workflow.organization),
                    verb="case.requeued",
                    subject=case,
                    payload={"policy_version": version.pk, "reason": "the model server answers again"},
                )
            ids = [case.pk for case in cases]
            # robust, as in case_create: a task the broker refused is sent by requeue_lost_cases.
            transaction.on_commit(lambda ids=ids: [decide_case.delay(pk) for pk in ids], robust=True)
            requeued += ids
    return requeued


def cases_requeue_lost(*, older_than: timedelta = timedelta(minutes=2), limit: int = 500) -> list[int]:
    """Queue again the live cases still queued ``older_than`` after they were created while the
    ``decisions`` queue holds nothing: their task was lost (the broker restarted between the commit
    and the publish, a task died on a database restart). Celery beat runs this. Deciding is
    idempotent — the case row is claimed only while queued — so a task that was merely slow makes
    the new one a no-op. Cases of workflows without a production version stay queued as they are."""
    from workflows.selectors import production_policy_version
    from workflows.tasks import decide_case

    cutoff = timezone.now() - older_than
    stale = Case.objects.filter(status=CaseStatus.QUEUED, split=Split.LIVE, created_at__lt=cutoff)
    requeued: list[int] = []
    for workflow in Workflow.objects.filter(pk__in=stale.values("workflow_id")):
        if production_policy_version(workflow=workflow) is None:
            continue
        ids = list(stale.filter(workflow=workflow).order_by("id").values_list("pk", flat=True)[:limit])
        for pk in ids:
            decide_case.delay(pk)
        requeued += ids
    if requeued:
        logger.warning("re-queued %d live cases whose decide task was lost: %s", len(requeued), requeued[:20])
    return requeued
