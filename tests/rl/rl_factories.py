"""The one place RL tests build their world: claims spec, tables, environments, cases, configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.rl import Featurizer, PPOConfig, collect_observations
from workflows.engine import CaseData, Environment, Rubric, WorkflowSpec
from workflows.packs import get_pack


@dataclass(frozen=True)
class ClaimsWorld:
    """Claims pack pieces shared by the RL tests (built once per session)."""

    spec: WorkflowSpec
    rubric: Rubric
    tables: dict[str, list[dict[str, Any]]]
    train_cases: list[CaseData]
    test_cases: list[CaseData]
    featurizer: Featurizer

    @classmethod
    def build(cls) -> ClaimsWorld:
        pack = get_pack("claims")
        spec = WorkflowSpec.from_dict(pack.spec_dict)
        rubric = Rubric.from_dict(pack.default_rubric_dict, spec)
        tables = pack.generate_tables(7, policy_count=200)
        train_cases = [
            case
            for level in (0, 1)
            for case in pack.generate_cases(150, seed=1, difficulty=level, tables=tables)
        ]
        test_cases = [
            case
            for level in (0, 1)
            for case in pack.generate_cases(60, seed=2, difficulty=level, tables=tables)
        ]
        env = Environment(spec, tables, rubric=rubric, pack_tools=pack.pack_tools)
        featurizer = Featurizer.fit(spec, collect_observations(env, train_cases[:100]))
        return cls(spec, rubric, tables, train_cases, test_cases, featurizer)

    def env_factory(self) -> Environment:
        return Environment(
            self.spec, self.tables, rubric=self.rubric, pack_tools=get_pack("claims").pack_tools
        )


def small_config(**overrides: Any) -> PPOConfig:
    """A PPO config small enough for a test: a few seconds on two cores."""
    values: dict[str, Any] = {
        "total_updates": 6,
        "num_envs": 16,
        "rollout_steps": 16,
        "minibatches": 2,
        "update_epochs": 2,
        "hidden_size": 32,
        "fit_cases": 64,
        "checkpoint_every": 3,
    }
    values.update(overrides)
    return PPOConfig(**values)
