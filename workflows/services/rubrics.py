"""Rubrics: create, version, edit drafts, and red-team them with the exploit policies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.services import audit_record
from workflows.engine.errors import SpecError
from workflows.engine.redteam import RedTeamReport, rubric_redteam
from workflows.engine.rubric import Rubric as EngineRubric
from workflows.engine.spec import WorkflowSpec
from workflows.models import Case, Rubric, RubricVersion, Workflow
from workflows.services.errors import validation_error_from


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
