"""Our PPO against Stable-Baselines3's PPO on the claims workflow: speed and final test score.

You are in the bench room. Both learners train on the same claims environment (same tables,
same training cases, same seed) for the same number of environment steps, with the same PPO
hyperparameters where the two libraries share them (learning rate, gamma, GAE lambda, clip,
entropy and value coefficients, gradient clip, epochs, rollout length, minibatch size,
environments stepped together, hidden sizes). SB3 sees the workflow through
``training.rl.gym_adapter.WorkflowGymEnv`` (a Box observation, a MultiDiscrete action) as plain
PPO: no action masking, invalid actions are simply penalised by the engine. Ours uses its
masked, factored policy over plain ``Environment`` objects.

Reported per learner: environment steps, wall-clock seconds of the whole ``train``/``learn``
call, environment steps per second, and the greedy policy's mean rubric score on held-out test
cases (difficulty 0-2), with the ratios ours/SB3.

    .venv/bin/python bench/ppo_vs_sb3.py [--steps 262144] [--threads 1] [--seed 0]

Both use two CPU cores at most: ours steps the environments in two processes (its default
``rollout_workers = 2``, one torch thread each), SB3 steps them in one (``DummyVecEnv``; its
``SubprocVecEnv`` would start one process per environment, 128 here) with ``--threads`` torch
threads (1 measured fastest for both). SB3's environments share one feature/mask cache, as
ours do. Wall time includes everything from the call (featurizer fitting too).

Needs the bench extras: gymnasium and stable-baselines3 (installed without touching torch).
Target: at least 2x SB3's steps per second at an equal or better test score.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from training.rl import Featurizer, PPOConfig, collect_observations, evaluate_policy, train
from workflows.engine import CaseData, Environment, Rubric, WorkflowSpec
from workflows.packs import get_pack

TARGET_SPEEDUP = 2.0


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    steps: int
    seconds: float
    test_score: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


class ClaimsBench:
    """The shared world: spec, rubric, tables, train and test cases, and a fitted featurizer."""

    def __init__(self, seed: int, train_per_level: int, test_per_level: int) -> None:
        pack = get_pack("claims")
        self.pack = pack
        self.spec = WorkflowSpec.from_dict(pack.spec_dict)
        self.rubric = Rubric.from_dict(pack.default_rubric_dict, self.spec)
        self.tables = pack.generate_tables(seed)
        self.train_cases: list[CaseData] = [
            case
            for level in (0, 1, 2, 3)
            for case in pack.generate_cases(
                train_per_level, seed=seed + 1, difficulty=level, tables=self.tables
            )
        ]
        self.test_cases: list[CaseData] = [
            case
            for level in (0, 1, 2)
            for case in pack.generate_cases(
                test_per_level, seed=seed + 99, difficulty=level, tables=self.tables
            )
        ]

    def env_factory(self) -> Environment:
        return Environment(self.spec, self.tables, rubric=self.rubric, pack_tools=self.pack.pack_tools)


def run_ours(bench: ClaimsBench, config: PPOConfig) -> Outcome:
    started = time.perf_counter()
    result = train(config, env_factory=bench.env_factory, train_cases=bench.train_cases)
    seconds = time.perf_counter() - started
    score = evaluate_policy(result.policy(), bench.env_factory, bench.test_cases)["score/mean"]
    return Outcome("caseloop PPO", result.global_step, seconds, score)


def run_sb3(bench: ClaimsBench, config: PPOConfig, steps: int) -> Outcome:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from training.rl.gym_adapter import WorkflowGymEnv

    started = time.perf_counter()
    probe = bench.env_factory()
    featurizer = Featurizer.fit(
        bench.spec, collect_observations(probe, bench.train_cases[: config.fit_cases])
    )

    def make(index: int):
        return lambda: WorkflowGymEnv(
            bench.env_factory, bench.train_cases, featurizer, seed=config.seed + index
        )

    vec_env = DummyVecEnv([make(i) for i in range(config.num_envs)])
    activation = torch.nn.Tanh if config.activation == "tanh" else torch.nn.ReLU
    model = PPO(
        "MlpPolicy",
        vec_env,
        learning_rate=lambda remaining: config.learning_rate * (remaining if config.anneal_lr else 1.0),
        n_steps=config.rollout_steps,
        batch_size=config.minibatch_size,
        n_epochs=config.update_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_coef,
        ent_coef=config.entropy_coef,
        vf_coef=config.value_coef,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs={
            "net_arch": {
                "pi": [config.hidden_size] * config.hidden_layers,
                "vf": [config.hidden_size] * config.hidden_layers,
            },
            "activation_fn": activation,
        },
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - started
    score = _sb3_test_score(bench, model, featurizer)
    return Outcome("Stable-Baselines3 PPO", int(model.num_timesteps), seconds, score)


def _sb3_test_score(bench: ClaimsBench, model, featurizer: Featurizer) -> float:
    from training.rl.gym_adapter import WorkflowGymEnv

    env = WorkflowGymEnv(bench.env_factory, bench.test_cases, featurizer, seed=0)
    total = 0.0
    for index in range(len(bench.test_cases)):
        observation, _ = env.reset(options={"case_index": index})
        done = False
        info: dict = {}
        while not done:
            action, _ = model.predict(observation, deterministic=True)
            observation, _, done, _, info = env.step(action)
        total += float(info.get("score", 0.0))
    return total / len(bench.test_cases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=262_144, help="environment steps for each learner")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for SB3 (1 is its fastest here; ours: 1 thread, 2 rollout processes)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-per-level", type=int, default=1500, help="training cases per difficulty 0-3")
    parser.add_argument("--test-per-level", type=int, default=300, help="test cases per difficulty 0-2")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    # One-time imports (torch.optim pulls in torch._dynamo, about a second) are paid here, not by
    # whichever learner happens to run first.
    torch.optim.Adam(torch.nn.Linear(1, 1).parameters())
    import stable_baselines3  # noqa: F401

    bench = ClaimsBench(args.seed, args.train_per_level, args.test_per_level)
    base = PPOConfig(seed=args.seed)
    updates = max(1, args.steps // base.batch_size)
    config = replace(base, total_updates=updates, checkpoint_every=updates)
    steps = updates * config.batch_size
    print(
        f"claims workflow, {len(bench.train_cases)} training cases, {len(bench.test_cases)} test cases; "
        f"{steps:,} environment steps each ({config.num_envs} envs x {config.rollout_steps} steps x "
        f"{updates} updates); SB3 torch threads {args.threads}; ours {config.rollout_workers} rollout "
        f"processes, {config.torch_threads} torch thread",
        flush=True,
    )
    ours = run_ours(bench, config)
    print(f"  ours done: {ours.steps_per_s:,.0f} steps/s, test score {ours.test_score:.4f}", flush=True)
    theirs = run_sb3(bench, config, steps)
    print(f"  SB3 done:  {theirs.steps_per_s:,.0f} steps/s, test score {theirs.test_score:.4f}", flush=True)

    print()
    print(f"| {'learner':<22} | {'env steps':>10} | {'wall s':>8} | {'steps/s':>9} | {'test score':>10} |")
    print(f"|{'-' * 24}|{'-' * 12}|{'-' * 10}|{'-' * 11}|{'-' * 12}|")
    for outcome in (ours, theirs):
        print(
            f"| {outcome.name:<22} | {outcome.steps:>10,} | {outcome.seconds:>8.1f} | "
            f"{outcome.steps_per_s:>9,.0f} | {outcome.test_score:>10.4f} |"
        )
    speedup = ours.steps_per_s / theirs.steps_per_s
    delta = ours.test_score - theirs.test_score
    print(f"| {'ratio ours/SB3':<22} | {'':>10} | {'':>8} | {speedup:>8.2f}x | {delta:>+10.4f} |")
    met = speedup >= TARGET_SPEEDUP and ours.test_score >= theirs.test_score
    print(
        f"\ntarget: >= {TARGET_SPEEDUP:.0f}x SB3's steps/s at an equal or better score -> "
        f"{'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
