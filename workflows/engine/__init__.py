"""The workflow engine: pure Python, no Django.

You are at the engine's front door. Specs, environments, rubrics, safe expressions and the
baseline/exploit policies are re-exported here; see ``docs/engine-api.md`` for the contract.
"""

from __future__ import annotations

from .environment import (
    Action,
    CaseData,
    Environment,
    Observation,
    Outcome,
    PackTool,
    StepRecord,
    ToolCall,
    Trajectory,
)
from .errors import CaseValidationError, EngineError, ExpressionError, Problem, RubricError, SpecError
from .expressions import Expression, compile_expression, format_value, render_template
from .policies import (
    EXPLOIT_POLICIES,
    AlwaysApprovePolicy,
    AlwaysDenyPolicy,
    AlwaysEscalatePolicy,
    ApproveAfterChecksPolicy,
    Policy,
    RandomPolicy,
    RulesPolicy,
    SkipAllChecksPolicy,
    run_episode,
)
from .redteam import RedTeamReport, mean_score, rubric_redteam
from .rubric import CRITERION_KINDS, Criterion, CriterionResult, Rubric, Score
from .spec import DecisionSpec, FieldSpec, ToolSpec, WorkflowSpec

__all__ = [
    "CRITERION_KINDS",
    "EXPLOIT_POLICIES",
    "Action",
    "AlwaysApprovePolicy",
    "AlwaysDenyPolicy",
    "AlwaysEscalatePolicy",
    "ApproveAfterChecksPolicy",
    "CaseData",
    "CaseValidationError",
    "Criterion",
    "CriterionResult",
    "DecisionSpec",
    "EngineError",
    "Environment",
    "Expression",
    "ExpressionError",
    "FieldSpec",
    "Observation",
    "Outcome",
    "PackTool",
    "Policy",
    "Problem",
    "RandomPolicy",
    "RedTeamReport",
    "Rubric",
    "RubricError",
    "RulesPolicy",
    "Score",
    "SkipAllChecksPolicy",
    "SpecError",
    "StepRecord",
    "ToolCall",
    "ToolSpec",
    "Trajectory",
    "WorkflowSpec",
    "compile_expression",
    "format_value",
    "mean_score",
    "render_template",
    "rubric_redteam",
    "run_episode",
]
