"""Language-model policy quality on the claims pack: SFT, then GRPO, over three seeds.

You are in the bench room. For each seed a small Llama-architecture model is built for the claims
workflow (tokenizer trained on the demonstrations), fine-tuned on the reference solver's
demonstrations of the train split (SFT), evaluated greedily on the test split, then trained on
with GRPO from that SFT checkpoint (the same run, resumed) and evaluated again. Printed per seed
and as mean ± std over seeds: the parse-error rate after SFT (unparsable model lines over all
model lines; target < 1%), the SFT score and the GRPO score (mean rubric total on the test split),
and whether GRPO's mean gain is larger than the run-to-run noise (the std over seeds of the SFT
score and of the GRPO score). Also printed: the SFT model's score on as many train cases as test
cases, to show how much of the train split it has memorised. Measured, not asserted.

    .venv/bin/python bench/lm_quality.py [--seeds 0 1 2] [--sft-steps 300] [--grpo-steps 20]
        [--grpo-lr 1e-4] [--grpo-temperature 1.0] [--grpo-kl 0.0] [--grpo-cases-per-step 4]
        [--grpo-group-size 4] [--grpo-engine torch] [--grpo-no-scale] [--grpo-extra-cases 0]
        [--per-difficulty 100] [--test-cases 60] [--eval-fresh 0] [--workers 2] [--quick]

``--grpo-extra-cases N`` lets GRPO train on N fresh cases per difficulty (another generator seed)
besides the train split, which SFT has seen many times over. ``--eval-fresh N`` also evaluates
both models on N cases per difficulty from a third generator seed, which neither SFT nor GRPO saw.
The gain is also given paired (each seed's GRPO score minus its own SFT score), with its std over
seeds: the run-to-run noise of the gain itself, beside the noise of the scores.

Seeds run in ``--workers`` processes at once (one torch thread each): two on a two-core machine.
Sizes: see ``lm_common.BENCH_MODEL`` (0.4M parameters); the split is 280 train / 60 validation /
60 test cases over difficulties 0-3.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_seed(task: tuple[int, dict]) -> dict:
    seed, options = task
    import torch
    from lm_common import BENCH_MODEL, claims_world, evaluate_greedy, fresh_cases

    from training.rl.lm import LMTrainConfig, train

    torch.set_num_threads(1)
    world = claims_world(per_difficulty=options["per_difficulty"])
    test = world.test[: options["test_cases"]]
    grpo_cases = [*world.train, *fresh_cases(world, options["grpo_extra_cases"])]
    unseen = fresh_cases(world, options["eval_fresh"], seed=13)
    base = {
        "seed": seed,
        "model": BENCH_MODEL,
        "sft": {"steps": options["sft_steps"], "batch_size": 8, "learning_rate": 5e-3, "warmup_steps": 10},
        "checkpoint_every": 10_000,
    }
    grpo = {
        "steps": options["grpo_steps"],
        "cases_per_step": options["grpo_cases_per_step"],
        "group_size": options["grpo_group_size"],
        "engine": options["grpo_engine"],
        "learning_rate": options["grpo_lr"],
        "temperature": options["grpo_temperature"],
        "kl_coef": options["grpo_kl"],
        "scale_rewards": options["grpo_scale_rewards"],
        "max_new_tokens": 192,
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        kwargs = dict(
            env_factory=world.env_factory,
            train_cases=grpo_cases,
            demo_cases=world.train,
            solver=world.solver,
            checkpoint_dir=directory,
        )
        sft = train(LMTrainConfig.from_dict({**base, "grpo": {**grpo, "steps": 0}}), **kwargs)
        sft_s = time.perf_counter() - started
        sft_eval = evaluate_greedy(sft.bundle, world.env_factory, test)
        sft_train_eval = evaluate_greedy(sft.bundle, world.env_factory, world.train[: options["test_cases"]])
        sft_unseen = evaluate_greedy(sft.bundle, world.env_factory, unseen) if unseen else None
        tick = time.perf_counter()
        full = train(LMTrainConfig.from_dict({**base, "grpo": grpo}), **kwargs)  # resumes after SFT
        grpo_s = time.perf_counter() - tick
        grpo_eval = evaluate_greedy(full.bundle, world.env_factory, test)
        grpo_unseen = evaluate_greedy(full.bundle, world.env_factory, unseen) if unseen else None
    train_reward = [m["reward/mean"] for m in full.history]
    return {
        "seed": seed,
        "parameters": sft.bundle.parameter_count(),
        "demonstrations": sft.demonstrations,
        "sft_parse_error_rate": sft_eval["parse_error/rate"],
        "sft_score": sft_eval["score/mean"],
        "sft_train_score": sft_train_eval["score/mean"],
        "sft_decided": sft_eval["episode/decided"],
        "sft_unseen_score": sft_unseen["score/mean"] if sft_unseen else None,
        "grpo_unseen_score": grpo_unseen["score/mean"] if grpo_unseen else None,
        "grpo_parse_error_rate": grpo_eval["parse_error/rate"],
        "grpo_score": grpo_eval["score/mean"],
        "grpo_decided": grpo_eval["episode/decided"],
        "grpo_train_reward_first5": statistics.fmean(train_reward[:5]) if train_reward else None,
        "grpo_train_reward_last5": statistics.fmean(train_reward[-5:]) if train_reward else None,
        "sft_seconds": sft_s,
        "grpo_seconds": grpo_s,
        "sft_criteria": {k: v for k, v in sft_eval.items() if k.startswith("score/") and k != "score/mean"},
        "grpo_criteria": {k: v for k, v in grpo_eval.items() if k.startswith("score/") and k != "score/mean"},
    }


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sft-steps", type=int, default=300)
    parser.add_argument("--grpo-steps", type=int, default=20)
    parser.add_argument("--grpo-lr", type=float, default=1e-4)
    parser.add_argument("--grpo-temperature", type=float, default=1.0)
    parser.add_argument("--grpo-kl", type=float, default=0.0, help="k3 KL coefficient to the SFT model")
    parser.add_argument("--grpo-cases-per-step", type=int, default=4)
    parser.add_argument("--grpo-group-size", type=int, default=4)
    parser.add_argument("--grpo-engine", choices=["torch", "vllm"], default="torch", help="rollout engine")
    parser.add_argument(
        "--grpo-no-scale",
        action="store_true",
        help="advantages centred within the group but not divided by its std (Dr. GRPO)",
    )
    parser.add_argument(
        "--grpo-extra-cases",
        type=int,
        default=0,
        help="fresh cases per difficulty (another seed) that GRPO trains on besides the train split",
    )
    parser.add_argument("--per-difficulty", type=int, default=100, help="cases generated per difficulty")
    parser.add_argument("--test-cases", type=int, default=60, help="evaluate on at most this many test cases")
    parser.add_argument(
        "--eval-fresh", type=int, default=0, help="also evaluate on this many unseen cases per difficulty"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny budgets")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    options = {
        "sft_steps": 20 if args.quick else args.sft_steps,
        "grpo_steps": 2 if args.quick else args.grpo_steps,
        "grpo_lr": args.grpo_lr,
        "grpo_temperature": args.grpo_temperature,
        "grpo_cases_per_step": args.grpo_cases_per_step,
        "grpo_group_size": args.grpo_group_size,
        "grpo_engine": args.grpo_engine,
        "grpo_kl": args.grpo_kl,
        "grpo_scale_rewards": not args.grpo_no_scale,
        "grpo_extra_cases": 2 if args.quick and args.grpo_extra_cases else args.grpo_extra_cases,
        "per_difficulty": 10 if args.quick else args.per_difficulty,
        "test_cases": 6 if args.quick else args.test_cases,
        "eval_fresh": min(args.eval_fresh, 2) if args.quick else args.eval_fresh,
    }
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    results = []
    with context.Pool(min(args.workers, len(args.seeds))) as pool:
        for result in pool.imap_unordered(run_seed, [(seed, options) for seed in args.seeds]):
            # A line per seed as it ends, so a long run that is stopped keeps what it measured.
            print(f"seed {result['seed']} done: {json.dumps(result)}", flush=True)
            results.append(result)
    results.sort(key=lambda r: r["seed"])
    wall = time.perf_counter() - started
    print(f"\nlanguage-model policy on the claims test split, {options}")
    print(
        f"{'seed':>5} {'params':>8} {'parse err (SFT)':>16} {'SFT train':>10} {'SFT score':>10} "
        f"{'GRPO score':>11} {'gain':>7} "
        f"{'decided SFT/GRPO':>17} {'SFT s':>6} {'GRPO s':>7}"
    )
    for r in results:
        print(
            f"{r['seed']:>5} {r['parameters']:>8} {r['sft_parse_error_rate']:>16.4f} "
            f"{r['sft_train_score']:>10.3f} {r['sft_score']:>10.3f} "
            f"{r['grpo_score']:>11.3f} {r['grpo_score'] - r['sft_score']:>+7.3f} "
            f"{r['sft_decided']:>8.2f}/{r['grpo_decided']:<8.2f} "
            f"{r['sft_seconds']:>6.0f} {r['grpo_seconds']:>7.0f}"
        )
    sft = [r["sft_score"] for r in results]
    grpo = [r["grpo_score"] for r in results]
    gains = [g - s for g, s in zip(grpo, sft, strict=True)]
    parse = [r["sft_parse_error_rate"] for r in results]
    print(f"\nparse-error rate after SFT: {_mean_std(parse)} (target < 0.01)")
    print(f"SFT score:  {_mean_std(sft)}")
    print(f"GRPO score: {_mean_std(grpo)}")
    print(f"GRPO gain:  {_mean_std(gains)} (per seed: {', '.join(f'{g:+.3f}' for g in gains)})")
    if len(results) > 1:
        noise = max(statistics.stdev(sft), statistics.stdev(grpo))
        gain = statistics.fmean(gains)
        verdict = "larger" if gain > noise else "NOT larger"
        print(
            f"mean gain {gain:+.3f} is {verdict} than the run-to-run noise of the scores {noise:.3f} "
            "(max std over seeds of the SFT and the GRPO score)"
        )
        paired = statistics.stdev(gains)
        verdict = "larger" if gain > paired else "NOT larger"
        print(f"mean gain {gain:+.3f} is {verdict} than the run-to-run noise of the gain {paired:.3f}")
    if results[0]["sft_unseen_score"] is not None:
        sft_u = [r["sft_unseen_score"] for r in results]
        grpo_u = [r["grpo_unseen_score"] for r in results]
        gains_u = [g - s for g, s in zip(grpo_u, sft_u, strict=True)]
        print(
            f"unseen cases ({options['eval_fresh']} per difficulty): SFT {_mean_std(sft_u)}, "
            f"GRPO {_mean_std(grpo_u)}, gain {_mean_std(gains_u)} "
            f"(per seed: {', '.join(f'{g:+.3f}' for g in gains_u)})"
        )
    print(f"wall time {wall:.0f}s with {args.workers} worker processes")
    if args.json:
        args.json.write_text(json.dumps({"options": options, "results": results, "wall_s": wall}, indent=2))


if __name__ == "__main__":
    main()
