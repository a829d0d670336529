"""The quality bar on the claims pack: does a default PPO run close the gap to the reference solver?

You are in the RL side's examination board. :func:`claims_quality` builds the claims world
(reference tables, training cases of difficulty 0-3, held-out test cases of difficulty 0-2),
scores the baselines on the test split — random, every exploit policy, the expert rules and
the reference solver — trains PPO (default config unless given) on two CPU threads, and
reports the trained policy's test score, the share of the gap between the best baseline
(rules or exploits) and the reference that it closes, gate triggers and wall time.

    .venv/bin/python -m training.rl.quality [--threads 2] [--seed 0] [--budget 600]

Exit status 0 when the bar is met: >= 80% of the gap closed, no gate triggered on the test
split, training within the budget.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any

import torch

from workflows.engine import EXPLOIT_POLICIES, Environment, RandomPolicy, Rubric, RulesPolicy, WorkflowSpec
from workflows.packs import get_pack

from .evaluate import evaluate_policy, gap_closed
from .ppo import PPOConfig, train

__all__ = ["GAP_TARGET", "claims_quality", "main"]

GAP_TARGET = 0.8


def claims_quality(
    config: PPOConfig | None = None,
    *,
    seed: int = 0,
    threads: int = 2,
    budget_s: float = 600.0,
    train_per_level: int = 1500,
    test_per_level: int = 300,
    progress: bool = False,
) -> dict[str, Any]:
    """Baselines, training and the gap closed on the claims pack's test split (JSON-ready).

    ``threads`` is the number of CPU cores to use: the trainer runs that many rollout processes."""
    pack = get_pack("claims")
    spec = WorkflowSpec.from_dict(pack.spec_dict)
    rubric = Rubric.from_dict(pack.default_rubric_dict, spec)
    tables = pack.generate_tables(seed)
    train_cases = [
        case
        for level in (0, 1, 2, 3)
        for case in pack.generate_cases(train_per_level, seed=seed + 1, difficulty=level, tables=tables)
    ]
    test_cases = [
        case
        for level in (0, 1, 2)
        for case in pack.generate_cases(test_per_level, seed=seed + 99, difficulty=level, tables=tables)
    ]

    def env_factory() -> Environment:
        return Environment(spec, tables, rubric=rubric, pack_tools=pack.pack_tools)

    baselines: dict[str, float] = {
        "random": evaluate_policy(RandomPolicy(spec, seed=seed), env_factory, test_cases)["score/mean"]
    }
    for name, factory in EXPLOIT_POLICIES.items():
        baselines[name] = evaluate_policy(factory(spec), env_factory, test_cases)["score/mean"]
    baselines["rules"] = evaluate_policy(RulesPolicy(spec, pack.rules_dict), env_factory, test_cases)[
        "score/mean"
    ]
    reference = evaluate_policy(pack.solver(spec), env_factory, test_cases)["score/mean"]
    best_name = max((n for n in baselines if n != "random"), key=lambda n: baselines[n])

    # Two cores: one rollout process per core (one torch thread each: faster than two threads
    # for networks this small, and no thread spinning against the other process).
    config = replace(config or PPOConfig(seed=seed), rollout_workers=threads, max_seconds=budget_s)

    def report_progress(update: int, metrics: dict[str, float]) -> None:
        if progress and update % 100 == 0:
            print(
                f"  update {update}: train rubric {metrics.get('reward/rubric', float('nan')):.3f}, "
                f"accuracy {metrics.get('decision/accuracy', float('nan')):.3f}, "
                f"{metrics['time/steps_per_s']:,.0f} steps/s, {metrics['time/elapsed_s']:.0f} s",
                flush=True,
            )

    started = time.perf_counter()
    result = train(config, env_factory=env_factory, train_cases=train_cases, metrics_sink=report_progress)
    wall = time.perf_counter() - started
    trained = evaluate_policy(result.policy(), env_factory, test_cases)
    closed = gap_closed(trained["score/mean"], baseline=baselines[best_name], reference=reference)
    met = closed >= GAP_TARGET and trained["gates/triggered"] == 0 and wall <= budget_s
    return {
        "test_cases": len(test_cases),
        "train_cases": len(train_cases),
        "baselines": baselines,
        "best_baseline": {"name": best_name, "score": baselines[best_name]},
        "reference": reference,
        "trained": trained["score/mean"],
        "trained_report": trained,
        "gap_closed": closed,
        "gates_triggered": trained["gates/triggered"],
        "train_wall_s": wall,
        "env_steps": result.global_step,
        "updates": result.updates,
        "threads": threads,
        "config": config.to_dict(),
        "met": met,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=600.0, help="training wall-clock budget, seconds")
    parser.add_argument("--config", default="{}", help="PPOConfig overrides as JSON")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = PPOConfig.from_dict({"seed": args.seed, **json.loads(args.config)})
    report = claims_quality(config, seed=args.seed, threads=args.threads, budget_s=args.budget, progress=True)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    print(f"\nclaims pack, {report['test_cases']} test cases (difficulty 0-2), mean rubric score:")
    for name, score in report["baselines"].items():
        print(f"  {name:<22} {score:.4f}")
    print(f"  {'trained PPO':<22} {report['trained']:.4f}")
    print(f"  {'reference solver':<22} {report['reference']:.4f}")
    best = report["best_baseline"]
    print(
        f"gap closed vs {best['name']} ({best['score']:.4f}) -> reference: {report['gap_closed']:.1%} "
        f"(target {GAP_TARGET:.0%}); gates triggered on test: {report['gates_triggered']}; "
        f"training {report['train_wall_s']:.0f} s, {report['env_steps']:,} env steps, "
        f"{report['updates']} updates, {report['threads']} cores -> {'met' if report['met'] else 'NOT met'}"
    )
    return 0 if report["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
