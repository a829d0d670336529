"""Writes for workflows, rubrics, cases and runs. Each service checks the actor, runs in one
transaction and writes its audit event in it; side effects outside the database go in on_commit."""

from __future__ import annotations

from workflows.services.cases import case_create, case_generate, case_import, parse_case_file
from workflows.services.decisions import decision_execute, decision_route
from workflows.services.reviews import (
    review_claim_next,
    review_release,
    review_submit,
    workflow_review_settings_set,
)
from workflows.services.rubrics import (
    rubric_create,
    rubric_redteam_run,
    rubric_version_create,
    rubric_version_update,
)
from workflows.services.runs import case_decide, environment_factory, run_policy
from workflows.services.workflows import reference_table_set, workflow_create, workflow_version_create

__all__ = [
    "case_create",
    "case_decide",
    "case_generate",
    "case_import",
    "decision_execute",
    "decision_route",
    "environment_factory",
    "parse_case_file",
    "reference_table_set",
    "review_claim_next",
    "review_release",
    "review_submit",
    "rubric_create",
    "rubric_redteam_run",
    "rubric_version_create",
    "rubric_version_update",
    "run_policy",
    "workflow_create",
    "workflow_review_settings_set",
    "workflow_version_create",
]
