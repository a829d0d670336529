"""Writes for policies, their versions, training jobs and evaluations."""

from __future__ import annotations

from training.services.policies import policy_create, policy_version_create, policy_version_promote

__all__ = ["policy_create", "policy_version_create", "policy_version_promote"]
