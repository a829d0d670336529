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
    if kind == PolicyKind.MLP:
        from training.rl.checkpoint import CheckpointError, read_checkpoint
        from training.rl.policy import NeuralPolicy

        try:
            checkpoint = read_checkpoint(version.artifact_path, verify=True)
        except (CheckpointError, OSError) as exc:
            raise ValidationError({"artifact_path": f"Cannot load {version}: {exc}"}) from None
        if version.artifact_hash and checkpoint.metadata.get("weights_sha256") != version.artifact_hash:
            raise ValidationError(
                {"artifact_hash": f"The weights of {version} do not match their recorded hash."}
            )
        return NeuralPolicy(checkpoint.load_model(), checkpoint.featurizer(spec), spec, deterministic=True)
    raise ValidationError({"kind": f"Policy kind {kind!r} cannot be loaded by this version of Caseloop."})
