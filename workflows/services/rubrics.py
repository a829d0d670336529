"""Rubrics: create, version, edit drafts, and red-team them with the exploit policies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.services import audit_record
from workflows.engine.environment import Action, Environment, Observation, StepRecord, Trajectory
from workflows.engine.errors import SpecError
from workflows.engine.policies import run_episode
from workflows.engine.redteam import RedTeamReport, rubric_redteam
from workflows.engine.rubric import Rubric as EngineRubric
from workflows.engine.rubric import Score
from workflows.engine.spec import WorkflowSpec
from workflows.models import Case, Rubric, RubricVersion, Run, Split, Workflow
from workflows.services.errors import validation_error_from

PREVIEW_MAX_CASES = 200
PREVIEW_RUNS = 10


def _checked_rubric(definition: Mapping[str, Any], workflow: Workflow) -> EngineRubric:
    version = workflow.latest_version
    spec = WorkflowSpec.from_dict(version.spec) if version else None
    try:
        return EngineRubric.from_dict(dict(definition), spec)
    except SpecError as exc:
        raise validation_error_from(exc, prefix="definition.") from None


@transaction.atomic
def rubric_create(*, actor: Actor, workflow: Workflow, name: str, definition: Mapping[str, Any]) -> Rubric:
    require(actor, "rubric.edit")
    require_same_org(actor, workflow)
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A rubric needs a name."})
    if Rubric.objects.filter(workflow=workflow, name=name).exists():
        raise ValidationError({"name": f"The workflow already has a rubric named {name!r}."})
    _checked_rubric(definition, workflow)
    rubric = Rubric.objects.create(workflow=workflow, name=name)
    audit_record(
        actor=actor, verb="rubric.created", subject=rubric, payload={"workflow": workflow.pk, "name": name}
    )
    rubric_version_create(actor=actor, rubric=rubric, definition=definition, note="Initial version")
    return rubric


@transaction.atomic
def rubric_version_create(
    *, actor: Actor, rubric: Rubric, definition: Mapping[str, Any], note: str = ""
) -> RubricVersion:
    require(actor, "rubric.edit")
    require_same_org(actor, rubric.workflow)
    checked = _checked_rubric(definition, rubric.workflow)
    Rubric.objects.select_for_update().filter(pk=rubric.pk).first()
    number = (rubric.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = RubricVersion.objects.create(
        rubric=rubric, number=number, definition=checked.to_dict(), note=note, created_by=actor.user
    )
    audit_record(
        actor=actor,
        verb="rubric_version.created",
        subject=version,
        payload={
            "rubric": rubric.pk,
            "number": number,
            "criteria": len(checked.to_dict().get("criteria", [])),
        },
    )
    return version


@transaction.atomic
def rubric_version_update(
    *, actor: Actor, version: RubricVersion, definition: Mapping[str, Any], note: str | None = None
) -> RubricVersion:
    """Edit a draft version in place; refused once anything has been scored with it."""
    require(actor, "rubric.edit")
    version = RubricVersion.objects.select_for_update().select_related("rubric__workflow").get(pk=version.pk)
    require_same_org(actor, version.rubric.workflow)
    if version.frozen or version.runs.exists():
        message = f"Version {version.number} has scored runs and is frozen; create a new version instead."
        raise ValidationError({"version": message})
    checked = _checked_rubric(definition, version.rubric.workflow)
    version.definition = checked.to_dict()
    if note is not None:
        version.note = note
    version.save(update_fields=["definition", "note"])
    audit_record(
        actor=actor, verb="rubric_version.updated", subject=version, payload={"number": version.number}
    )
    return version


def rubric_version_freeze(version: RubricVersion) -> None:
    """Mark a version used; called inside the transaction that scores the first run with it."""
    if not version.frozen:
        RubricVersion.objects.filter(pk=version.pk, frozen=False).update(frozen=True)
        version.frozen = True


def rubric_redteam_run(
    *, actor: Actor, version: RubricVersion, limit: int = 200, threshold: float = 0.5
) -> RedTeamReport:
    """Score the exploit policies (and the pack's reference solver) with this rubric on validation cases."""
    require(actor, "workflow.view")
    from workflows.services.runs import environment_parts

    workflow = version.rubric.workflow
    require_same_org(actor, workflow)
    workflow_version = workflow.latest_version
    if workflow_version is None:
        raise ValidationError({"workflow": "The workflow has no version."})
    spec, tables, pack_tools, pack = environment_parts(workflow_version)
    rubric = EngineRubric.from_dict(version.definition, spec)
    cases = [
        case.to_engine()
        for case in Case.objects.filter(workflow=workflow, split__in=["validation", "test"]).order_by("id")[
            :limit
        ]
    ]
    if not cases:
        raise ValidationError({"cases": "Red-teaming needs validation or test cases with expected outcomes."})
    return rubric_redteam(
        spec,
        rubric,
        cases,
        tables,
        pack_tools=pack_tools,
        threshold=threshold,
        reference_policy=pack.solver(spec) if pack else None,
    )


# --------------------------------------------------------------------------- previewing a draft


def _preview_cases(workflow: Workflow, limit: int) -> tuple[list[Case], str]:
    """Labelled held-out cases (validation and test); labelled train cases when there are none."""
    labelled = Case.objects.filter(workflow=workflow, expected__isnull=False).order_by("id")
    cases = list(labelled.filter(split__in=[Split.VALIDATION, Split.TEST])[:limit])
    if cases:
        return cases, "validation and test"
    return list(labelled.filter(split=Split.TRAIN)[:limit]), "train"


def _stored_trajectory(run: Run) -> Trajectory:
    """A recorded run as the engine's trajectory, so a rubric can score it again."""
    case = run.case.to_engine()
    steps: list[StepRecord] = []
    decision: Action | None = None
    for step in run.steps.all():  # prefetched, in index order
        action = Action(
            kind=step.kind,
            name=step.action,
            arguments=dict(step.arguments or {}),
            explanation=step.explanation,
            confidence=step.confidence if step.confidence is not None else 1.0,
            probabilities=dict(step.probabilities or {}),
        )
        observation = Observation(
            case=case.fields, revealed={}, step_index=step.index, steps_left=0, last_error=None
        )
        steps.append(
            StepRecord(step.index, action, observation, step.result, step.error or None, step.reward)
        )
        if step.kind == "decision" and not step.error:
            decision = action
    stored = getattr(run, "decision", None)
    if decision is not None and stored is not None:
        # The decision as recorded carries the coerced arguments the rubric saw.
        decision = Action(
            kind=decision.kind,
            name=decision.name,
            arguments=dict(stored.arguments),
            explanation=decision.explanation,
            confidence=decision.confidence,
            probabilities=decision.probabilities,
        )
    return Trajectory(case=case, steps=steps, decision=decision, truncated=run.truncated)


def _criterion_means(scores: list[Score], names: list[str]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for name in names:
        applied = [s.criterion(name) for s in scores if s.criterion(name).applied]
        out[name] = {
            "mean": sum(r.score for r in applied) / len(applied) if applied else None,
            "pass_rate": sum(1 for r in applied if r.passed) / len(applied) if applied else None,
            "applied": len(applied) / len(scores) if scores else 0.0,
        }
    return out


def rubric_preview(
    *, actor: Actor, workflow: Workflow, definition: Mapping[str, Any], limit: int = 50
) -> dict[str, Any]:
    """Score a draft rubric without saving anything: how the baseline and exploit policies fare under
    it on up to ``limit`` labelled cases, how the workflow's recent recorded runs would score, and the
    red-team report (exploits at or above the threshold are flagged).

    The definition is validated against the workflow's latest spec first; problems raise a
    ValidationError keyed by path (``definition.criteria[2].params.tolerance``). Returns JSON-ready
    data: ``policies`` maps each baseline to its mean score, gated share, outcome accuracy and
    per-criterion means (mean score and pass rate where the criterion applied, and how often it did).
    """
    require(actor, "workflow.view")
    require_same_org(actor, workflow)
    from training.services.evaluation import baseline_policies
    from workflows.services.runs import environment_parts

    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= PREVIEW_MAX_CASES:
        raise ValidationError({"limit": f"Preview on 1 to {PREVIEW_MAX_CASES} cases."})
    if not isinstance(definition, Mapping):
        raise ValidationError({"definition": "must be an object with criteria, step_cost and shaping"})
    workflow_version = workflow.latest_version
    if workflow_version is None:
        raise ValidationError({"workflow": f"{workflow.name} has no version yet."})
    spec, tables, pack_tools, pack = environment_parts(workflow_version)
    try:
        rubric = EngineRubric.from_dict(dict(definition), spec)
    except SpecError as exc:
        raise validation_error_from(exc, prefix="definition.") from None
    cases, sample = _preview_cases(workflow, limit)
    if not cases:
        raise ValidationError({"cases": f"{workflow.name} has no labelled cases to try the rubric on."})
    engine_cases = [case.to_engine() for case in cases]
    names = [criterion.name for criterion in rubric.criteria]

    env = Environment(spec, tables, rubric=rubric, pack_tools=pack_tools)
    policies: dict[str, dict[str, Any]] = {}
    for name, policy in baseline_policies(workflow, spec, pack).items():
        scores: list[Score] = []
        correct = 0
        for position, case in enumerate(engine_cases):
            trajectory = run_episode(env, policy, case, seed=position)
            assert env.score is not None  # the environment has a rubric
            scores.append(env.score)
            decision = trajectory.decision
            correct += bool(decision and case.expected and decision.name == case.expected.decision)
        policies[name] = {
            "mean": sum(s.total for s in scores) / len(scores),
            "gated": sum(1 for s in scores if s.gated) / len(scores),
            "accuracy": correct / len(scores),
            "criteria": _criterion_means(scores, names),
        }

    recent = (
        Run.objects.filter(case__workflow=workflow, status=Run.Status.FINISHED)
        .select_related("case", "decision", "policy_version__policy")
        .prefetch_related("steps")
        .order_by("-started_at", "-id")[:PREVIEW_RUNS]
    )
    runs = []
    for run in recent:
        score = rubric.score(_stored_trajectory(run), run.case.to_engine())
        runs.append(
            {
                "run": run.pk,
                "case": run.case_id,
                "policy_version": str(run.policy_version),
                "decision": getattr(getattr(run, "decision", None), "name", None),
                "recorded_score": run.score,
                "score": score.total,
                "gated": score.gated,
                "breakdown": [result.to_dict() for result in score.breakdown],
            }
        )

    report = rubric_redteam(
        spec,
        rubric,
        engine_cases,
        tables,
        pack_tools=pack_tools,
        reference_policy=pack.solver(spec) if pack else None,
    )
    return {
        "definition": rubric.to_dict(),
        "workflow_version": workflow_version.number,
        "cases": len(engine_cases),
        "sample": sample,
        "criteria": [
            {"name": c.name, "kind": c.kind, "weight": c.weight, "gate": c.gate} for c in rubric.criteria
        ],
        "policies": policies,
        "runs": runs,
        "redteam": {**report.to_dict(), "passed": report.passed},
    }
