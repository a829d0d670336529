"""The ``data`` of each event, built from the row that changed.

The services that emit events pass one of these, wrapped in a lambda, to ``webhooks_emit``: it is
only called when some webhook subscribes, so an organisation without webhooks pays nothing for
building it. Each carries ids, status or outcome and timestamps, enough for an integration to act
without calling back. docs/webhooks.md shows an example of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _actor(actor: Any) -> dict[str, Any] | None:
    if actor is None:
        return None
    return {"kind": actor.kind, "label": actor.label}


def case_summary(case: Any) -> dict[str, Any]:
    return {
        "id": case.pk,
        "external_id": case.external_id,
        "workflow": {"id": case.workflow_id, "slug": case.workflow.slug},
        "workflow_version": case.workflow_version_id,
        "split": case.split,
        "source": case.source,
        "status": case.status,
        "fields": case.fields,
        "expected": case.expected,
        "created_at": _time(case.created_at),
    }


def case_created(case: Any) -> dict[str, Any]:
    return {"case": case_summary(case)}


def decision_finalized(decision: Any, *, actor: Any = None, details: Mapping[str, Any] | None = None) -> dict:
    """``details``: the transition's audit payload (a rejection's ``reason``, the routing)."""
    details = details or {}
    case = decision.case
    explanation = decision.explanation or {}
    rejected = decision.status == "rejected"
    return {
        "decision": {
            "id": decision.pk,
            "status": decision.status,
            "proposed": {"decision": decision.name, "arguments": decision.arguments},
            # What was carried out; a rejected decision executes nothing.
            "outcome": None if rejected else decision.outcome,
            "rejected_outcome": decision.outcome if rejected else None,
            "rejection_reason": details.get("reason") if rejected else None,
            "review_outcome": decision.review_outcome or None,
            "confidence": decision.confidence,
            "risk_level": decision.risk_level,
            "explanation": explanation.get("text", ""),
            "policy_version": decision.policy_version_id,
            "created_at": _time(decision.created_at),
            "reviewed_at": _time(decision.reviewed_at),
            "executed_at": _time(decision.executed_at),
            "finalized_at": _time(decision.updated_at),
            "finalized_by": _actor(actor),
        },
        "case": {
            "id": case.pk,
            "external_id": case.external_id,
            "workflow": {"id": case.workflow_id, "slug": case.workflow.slug},
        },
    }


def training_job_finished(job: Any) -> dict[str, Any]:
    """``job``: the job as stored after it finished (status, error, result version)."""
    version = job.result_version
    return {
        "training_job": {
            "id": job.pk,
            "status": job.status,
            "workflow": {"id": job.workflow_id, "slug": job.workflow.slug},
            "policy": {"id": job.policy_id, "name": job.policy.name},
            "algorithm": job.algorithm,
            "update": job.update,
            "total_updates": job.total_updates,
            "error": job.error,
            "created_at": _time(job.created_at),
            "started_at": _time(job.started_at),
            "finished_at": _time(job.finished_at),
            "result_version": None
            if version is None
            else {
                "id": version.pk,
                "number": version.number,
                "stage": version.stage,
                "metrics": version.metrics,
            },
        }
    }


def policy_version_promoted(
    version: Any, *, previous_stage: str, retired: list[int], reason: str, forced: bool, actor: Any = None
) -> dict[str, Any]:
    policy = version.policy
    return {
        "policy_version": {
            "id": version.pk,
            "number": version.number,
            "stage": version.stage,
            "previous_stage": previous_stage,
            "policy": {"id": policy.pk, "name": policy.name, "kind": policy.kind},
            "workflow": {"id": policy.workflow_id, "slug": policy.workflow.slug},
            "artifact_hash": version.artifact_hash,
            "metrics": version.metrics,
            "promoted_at": _time(version.promoted_at),
        },
        "retired_versions": list(retired),
        "reason": reason,
        "forced": forced,
        "promoted_by": _actor(actor),
    }


def ping(webhook: Any, *, actor: Any = None) -> dict[str, Any]:
    return {
        "webhook": {"id": webhook.pk, "url": webhook.url, "events": list(webhook.events)},
        "message": "A test delivery from Caseloop: if you can read this, your endpoint works.",
        "requested_by": _actor(actor),
    }
