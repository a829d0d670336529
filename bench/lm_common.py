"""Shared pieces of the language-model benchmarks: the claims world and its splits, greedy
evaluation, and the single-turn version of the task.

The claims world: reference tables (seed 7) and cases generated at every difficulty (0-3, seed
11), assigned to train/validation/test with the same seeded 70/15/15 shuffle the product uses
(``case_generate``); "the test split" below is that split.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workflows.engine import CaseData, Environment, Rubric, WorkflowSpec
from workflows.packs import get_pack

BENCH_MODEL = {
    "vocab_size": 512,
    "hidden_size": 128,
    "head_size": 64,
    "layers": 2,
    "intermediate_size": 256,
    "max_length": 1024,
    "tokenizer_cases": 200,
}


@dataclass(frozen=True)
class ClaimsWorld:
    spec: WorkflowSpec
    rubric: Rubric
    tables: dict
    train: list[CaseData]
    validation: list[CaseData]
    test: list[CaseData]

    def env_factory(self) -> Environment:
        return Environment(
            self.spec, self.tables, rubric=self.rubric, pack_tools=get_pack("claims").pack_tools
        )

    @property
    def solver(self) -> Any:
        return get_pack("claims").solver(self.spec)


def claims_world(*, per_difficulty: int = 100, seed: int = 11) -> ClaimsWorld:
    pack = get_pack("claims")
    spec = pack.spec()
    tables = pack.generate_tables(7)
    cases = [
        case
        for difficulty in range(4)
        for case in pack.generate_cases(per_difficulty, seed=seed, difficulty=difficulty, tables=tables)
    ]
    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    n_train, n_validation = round(len(cases) * 0.70), round(len(cases) * 0.15)
    pick = lambda indices: [cases[i] for i in sorted(indices)]  # noqa: E731
    return ClaimsWorld(
        spec,
        pack.rubric(spec),
        tables,
        pick(order[:n_train]),
        pick(order[n_train : n_train + n_validation]),
        pick(order[n_train + n_validation :]),
    )


def fresh_cases(world: ClaimsWorld, per_difficulty: int, *, seed: int = 12) -> list[CaseData]:
    """Labelled cases of every difficulty from another generator seed: none is in the world's splits."""
    pack = get_pack("claims")
    return [
        case
        for difficulty in range(4)
        for case in pack.generate_cases(per_difficulty, seed=seed, difficulty=difficulty, tables=world.tables)
    ]


def evaluate_greedy(bundle: Any, env_factory: Any, cases: list[CaseData], *, max_length: int = 1024) -> dict:
    """Greedy episodes of ``bundle`` on ``cases``: mean rubric score, parse-error rate, and more."""
    from training.rl.lm.engines import TorchEngine
    from training.rl.lm.grpo import episode_metrics
    from training.rl.lm.rollout import TokenCodec, run_episodes

    engine = TorchEngine(
        bundle.model, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
    )
    episodes = run_episodes(
        engine,
        TokenCodec.from_bundle(bundle),
        env_factory,
        cases,
        max_new_tokens=192,
        temperature=0.0,
        seed=0,
        max_length=max_length,
    )
    return episode_metrics(episodes)


class SingleTurnEnvironment:
    """The single-turn version of the task: the episode starts with every check the reference
    solver would make already revealed (the prompt shows the case and their results) and ends
    after the model's first line, which must be the decision; the rubric scores it as usual."""

    def __init__(self, env: Environment, solver: Any) -> None:
        self.env = env
        self.solver = solver
        self.spec = env.spec
        self._done = True
        self._score = None

    def reset(self, case: CaseData) -> Any:
        observation = self.env.reset(case)
        self.solver.reset(0)
        while True:
            action = self.solver.act(observation)
            if action.is_decision:
                break
            observation, _, _, _ = self.env.step(action)
        self._done = False
        self._score = None
        self._case = case
        self._prefix_reward = sum(step.reward for step in self.env.trajectory.steps)
        return observation

    def step(self, action: Any) -> tuple[Any, float, bool, dict]:
        observation, reward, done, info = self.env.step(action)
        if not done:  # one line only: an episode without a decision is scored as it stands
            score = self.env.rubric.score(self.env.trajectory, self.env.trajectory.case)
            reward += score.total
            info = {**info, "score": score}
        self._done = True
        return observation, reward, True, info

    @property
    def trajectory(self) -> Any:
        return self.env.trajectory

    @property
    def done(self) -> bool:
        return self._done
