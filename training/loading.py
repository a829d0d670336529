"""Turning a stored PolicyVersion into an engine policy that can act."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from training.models import PolicyKind, PolicyVersion
from workflows.engine.errors import SpecError
from workflows.engine.policies import Policy, RulesPolicy
from workflows.engine.spec import WorkflowSpec


def policy_load(version: PolicyVersion, spec: WorkflowSpec) -> Policy:
    kind = version.policy.kind
    if kind == PolicyKind.RULES:
        try:
            return RulesPolicy(spec, version.config)
        except SpecError as exc:
            raise ValidationError({f"config.{p.path}": p.message for p in exc.problems}) from None
    raise ValidationError({"kind": f"Policy kind {kind!r} cannot be loaded by this version of Caseloop."})
