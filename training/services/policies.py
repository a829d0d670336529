"""Writes for policies and their versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from caseloop.accounts.permissions import Actor, require, require_same_org
from caseloop.audit.services import audit_record
from caseloop.webhooks import payloads as webhook_payloads  # webhooks: policy_version.promoted
from caseloop.webhooks.services import webhooks_emit  # webhooks: policy_version.promoted
from training.models import PRODUCTION_STAGES, Policy, PolicyKind, PolicyVersion, Stage
from workflows.engine.errors import SpecError
from workflows.engine.policies import RulesPolicy
from workflows.engine.spec import WorkflowSpec
from workflows.models import Workflow


@transaction.atomic
def policy_create(*, actor: Actor, workflow: Workflow, name: str, kind: str) -> Policy:
    require(actor, "policy.edit")
    require_same_org(actor, workflow)
    errors: dict[str, str] = {}
    name = name.strip()
    if not name:
        errors["name"] = "A policy needs a name."
    elif Policy.objects.filter(workflow=workflow, name=name).exists():
        errors["name"] = f"The workflow already has a policy named {name!r}."
    if kind not in PolicyKind.values:
        errors["kind"] = f"Unknown kind {kind!r}; choose one of {', '.join(PolicyKind.values)}."
    if errors:
        raise ValidationError(errors)
    policy = Policy.objects.create(organization=actor.organization, workflow=workflow, name=name, kind=kind)
    audit_record(actor=actor, verb="policy.created", subject=policy, payload={"name": name, "kind": kind})
    return policy


@transaction.atomic
def policy_version_create(
    *,
    actor: Actor,
    policy: Policy,
    config: Mapping[str, Any],
    artifact_path: str = "",
    artifact_hash: str = "",
    metrics: Mapping[str, Any] | None = None,
) -> PolicyVersion:
    """A new candidate version. A rules policy's config is checked against the workflow's spec."""
    require(actor, "policy.edit")
    require_same_org(actor, policy)
    if policy.kind == PolicyKind.RULES:
        version = policy.workflow.latest_version
        if version is None:
            raise ValidationError({"workflow": "The workflow has no version."})
        try:
            RulesPolicy.validate(WorkflowSpec.from_dict(version.spec), dict(config))
        except SpecError as exc:
            raise ValidationError({f"config.{p.path}": p.message for p in exc.problems}) from None
    Policy.objects.select_for_update().filter(pk=policy.pk).first()
    number = (policy.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = PolicyVersion.objects.create(
        policy=policy,
        number=number,
        config=dict(config),
        artifact_path=artifact_path,
        artifact_hash=artifact_hash,
        metrics=dict(metrics or {}),
    )
    audit_record(
        actor=actor,
        verb="policy_version.created",
        subject=version,
        payload={"policy": policy.pk, "number": number, "artifact_hash": artifact_hash},
    )
    return version


def promotion_check(version: PolicyVersion) -> str | None:
    """Why ``version`` may not replace production without force, or None when it may.

    It must have a validation report made against the current production version, and must score
    at least as well as production did on those same cases."""
    from workflows.selectors import production_policy_version

    production = production_policy_version(workflow=version.policy.workflow)
    if production is None or production.pk == version.pk:
        return None
    report = (
        version.evaluations.filter(split="validation", production_version=production).order_by("-id").first()
    )
    if report is None:
        return f"{version} has no validation evaluation against production {production}; evaluate it first."
    ours, theirs = report.metrics.get("score/mean", 0.0), (report.production or {}).get("score/mean", 0.0)
    if ours < theirs:
        return f"{version} scores {ours:.3f} on validation, below production {production} at {theirs:.3f}."
    return None


@transaction.atomic
def policy_version_promote(
    *, actor: Actor, version: PolicyVersion, stage: str, reason: str = "", force: bool = False
) -> PolicyVersion:
    """Move a version to ``stage`` (admins only, audited). Entering a production stage retires the
    workflow's previous production version, so exactly one version decides live cases. A version
    that scores below production on validation is refused unless ``force`` with a written reason;
    autonomy additionally needs the reviewers' agreement, which cannot be forced."""
    require(actor, "policy.promote")
    version = PolicyVersion.objects.select_for_update().select_related("policy__workflow").get(pk=version.pk)
    require_same_org(actor, version.policy)
    if stage not in Stage.values:
        raise ValidationError({"stage": f"Unknown stage {stage!r}; choose one of {', '.join(Stage.values)}."})
    previous_stage = version.stage
    if stage == previous_stage:
        return version
    # Autonomy is earned with reviewers: no override, unlike the evaluation gate.
    agreement = autonomy_agreement_check(version) if stage == Stage.AUTONOMOUS else None
    refusal = promotion_check(version) if stage in PRODUCTION_STAGES else None
    if refusal and not force:
        raise ValidationError({"version": refusal})
    if refusal and not reason.strip():
        raise ValidationError({"reason": "Forcing a promotion needs a written reason."})
    retired: list[int] = []
    if stage in PRODUCTION_STAGES:
        current = (
            PolicyVersion.objects.select_for_update()
            .filter(policy__workflow=version.policy.workflow, stage__in=PRODUCTION_STAGES)
            .exclude(pk=version.pk)
        )
        retired = list(current.values_list("pk", flat=True))
        current.update(stage=Stage.RETIRED)
    version.stage = stage
    version.promoted_at = timezone.now()
    version.save(update_fields=["stage", "promoted_at"])
    audit_record(
        actor=actor,
        verb="policy_version.promoted",
        subject=version,
        payload={
            "from": previous_stage,
            "to": stage,
            "reason": reason,
            "retired": retired,
            "forced_over": refusal,
            "agreement": agreement,
        },
    )
    # --- webhooks: policy_version.promoted (sent on commit; the data is built only if someone subscribes)
    webhooks_emit(
        organization=actor.organization,
        event="policy_version.promoted",
        payload=lambda: webhook_payloads.policy_version_promoted(
            version,
            previous_stage=previous_stage,
            retired=retired,
            reason=reason,
            forced=bool(refusal),
            actor=actor,
        ),
    )
    # --- end webhooks ---
    return version


def autonomy_agreement_check(version: PolicyVersion) -> dict[str, Any]:
    """The figures that allow ``version`` to become autonomous: reviewers approved at least the
    workflow's ``agreement_threshold`` of its last ``agreement_window`` reviewed decisions (and it
    has that many). Raises ValidationError on ``stage`` with the figures otherwise."""
    from workflows.selectors import policy_version_agreement, review_settings_for

    settings = review_settings_for(workflow=version.policy.workflow)
    window, threshold = settings.agreement_window, settings.agreement_threshold
    rate, reviewed = policy_version_agreement(version, last_n=window)
    figures = {"rate": rate, "reviewed": reviewed, "threshold": threshold, "window": window}
    if reviewed < window:
        raise ValidationError(
            {
                "stage": f"{version} cannot become autonomous: it has {reviewed} reviewed decision(s) and "
                f"needs {window} with reviewers agreeing on at least {threshold:.1%} of them."
            }
        )
    if rate < threshold:
        raise ValidationError(
            {
                "stage": f"{version} cannot become autonomous: reviewers agreed with {rate:.1%} of its last "
                f"{reviewed} reviewed decisions ({round(rate * reviewed)}/{reviewed}); "
                f"at least {threshold:.1%} is needed."
            }
        )
    return figures
