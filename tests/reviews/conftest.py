"""Review tests' set-up: a claims workflow with an admin, reviewers and an auditor of one
organisation, and helpers that put decisions where a test needs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from caseloop.accounts.models import Role
from caseloop.accounts.permissions import Actor
from tests.factories import (
    approve_rules,
    claims_fields,
    decide_live_case,
    make_actor,
    make_claims_workflow,
    make_member,
    make_rules_version,
)
from training.models import Stage
from training.services import policy_version_promote
from workflows.models import Decision, Workflow
from workflows.services import review_claim_next, review_submit, workflow_review_settings_set


@dataclass
class Claims:
    admin: Actor
    workflow: Workflow
    version: Any  # the expert rules, supervised

    def member(self, role: str = Role.REVIEWER) -> Actor:
        organization = self.admin.organization
        return Actor(organization=organization, user=make_member(organization, role), role=role)

    def settings(self, **changes: Any) -> None:
        workflow_review_settings_set(actor=self.admin, workflow=self.workflow, **changes)

    def decide(self, *, amount: float | None = None, index: int = 0) -> Decision:
        decision = decide_live_case(
            self.admin, self.workflow, claims_fields(self.workflow, amount=amount, index=index)
        )
        assert decision is not None
        return decision

    def approve(self, decision: Decision, reviewer: Actor | None = None) -> Decision:
        """Claim ``decision`` as ``reviewer`` (a fresh one by default) and approve it."""
        reviewer = reviewer or self.member()
        claimed = review_claim_next(actor=reviewer, workflow=self.workflow)
        assert claimed is not None and claimed.pk == decision.pk
        review_submit(actor=reviewer, decision=claimed, verdict="approve")
        decision.refresh_from_db()
        return decision

    def autonomous(self, *, confidence: float = 0.99, amount: str = "amount_claimed") -> Any:
        """A rules version that approves with ``confidence``, made autonomous the honest way: while
        supervised it decides one case, a reviewer approves it, and the one-review window is met."""
        self.settings(agreement_window=1, agreement_threshold=1.0)
        version = make_rules_version(
            self.admin,
            self.workflow,
            config=approve_rules(confidence=confidence, amount=amount),
            stage=Stage.SUPERVISED,
        )
        self.approve(self.decide())
        return policy_version_promote(actor=self.admin, version=version, stage=Stage.AUTONOMOUS)


@pytest.fixture
def claims() -> Claims:
    admin = make_actor(role=Role.ADMIN)
    workflow, version = make_claims_workflow(admin)
    return Claims(admin=admin, workflow=workflow, version=version)
