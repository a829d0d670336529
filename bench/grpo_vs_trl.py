"""Our GRPO against TRL's ``GRPOTrainer``: seconds per step and reward after N steps, in one run.

You are in the bench room. Both start from the same small model (built for the claims workflow and
fine-tuned briefly on demonstrations, so rewards are not all zero) and train on a single-turn
version of the task (``lm_common.SingleTurnEnvironment``): the prompt is the case with the results
of every check the reference solver makes, the completion is one line that must be the
``DECIDE …`` line, and the reward is the environment's: the rubric total of the episode with that
decision (a parse error or an invalid decision scores what the rubric gives an undecided case,
minus the penalty). The same settings on both sides: group size, prompts per step, steps,
learning rate (constant, AdamW), temperature 1 with no top-k/top-p, at most 192 new tokens
stopping at the newline, one update per batch (``num_iterations`` 1), no KL term (beta 0), clip
0.2/0.28, DAPO token-level loss, group-std reward scaling, one torch thread.

Reported: seconds per training step (wall time of the whole train call divided by the steps),
the mean training reward of the last steps, and the mean greedy reward on held-out prompts after
N steps, for both, with the speed ratio. Target: ours at least 1.5x faster at equal reward.

``--replay`` separates the update from the data: TRL's batches (prompt and completion ids, masks,
advantages) are recorded as its trainer computes its loss, then fed, in order, to our
``grpo_update`` and optimizer from a fresh copy of the start model. Printed per seed: how far the
replayed model ends from TRL's (parameter distance over TRL's own distance travelled) and its
held-out reward beside TRL's. Equal models mean any gap in reward comes from the batches each
side sampled, not from how it learns from them.

    .venv/bin/python bench/grpo_vs_trl.py [--steps 20] [--group 4] [--prompts 4] [--sft-steps 150]
                                                  [--seeds 0 1 2] [--replay]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from lm_common import BENCH_MODEL, SingleTurnEnvironment, claims_world


def single_turn_factory(world):
    return lambda: SingleTurnEnvironment(world.env_factory(), world.solver)


def prompt_text(world, case) -> str:
    from training.rl.lm.textio import Transcript

    env = SingleTurnEnvironment(world.env_factory(), world.solver)
    transcript = Transcript(world.spec)
    return transcript.observe(env.reset(case))


def single_turn_reward(world, case, line: str) -> float:
    from training.rl.lm.textio import parse_action

    env = SingleTurnEnvironment(world.env_factory(), world.solver)
    env.reset(case)
    _, reward, _, _ = env.step(parse_action(line).action)
    return float(reward)


def evaluate(bundle, world, cases) -> float:
    from training.rl.lm.engines import TorchEngine
    from training.rl.lm.rollout import TokenCodec, run_episodes

    engine = TorchEngine(
        bundle.model, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
    )
    episodes = run_episodes(
        engine,
        TokenCodec.from_bundle(bundle),
        single_turn_factory(world),
        cases,
        max_new_tokens=192,
        temperature=0.0,
        seed=0,
        max_length=1024,
    )
    return statistics.fmean(e.reward for e in episodes)


def run_ours(bundle, world, args) -> dict:
    from training.rl.lm.config import GRPOConfig
    from training.rl.lm.engines import TorchEngine
    from training.rl.lm.grpo import grpo_step
    from training.rl.lm.rollout import TokenCodec

    model = bundle.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    config = GRPOConfig(
        steps=args.steps,
        cases_per_step=args.prompts,
        group_size=args.group,
        learning_rate=args.lr,
        temperature=1.0,
        max_new_tokens=192,
        microbatch_size=args.prompts * args.group,
    )
    engine = TorchEngine(
        model, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
    )
    codec = TokenCodec.from_bundle(bundle)
    rewards = []
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        metrics = grpo_step(
            model=model,
            optimizer=optimizer,
            engine=engine,
            codec=codec,
            env_factory=single_turn_factory(world),
            cases=world.train,
            config=config,
            seed=args.seed,
            step=step,
            pad_token_id=bundle.tokenizer.pad_token_id,
            max_length=1024,
        )
        rewards.append(metrics["reward/mean"])
    seconds = time.perf_counter() - started
    return {"seconds_per_step": seconds / args.steps, "train_rewards": rewards}


def run_trl(bundle, world, args, output_dir: str, record: list | None = None) -> dict:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = bundle.model, bundle.tokenizer
    # Stop at the end of the line, as ours does: TRL stops at the model's EOS ids.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *bundle.stop_token_ids]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    cases = {case.id: case for case in world.train}
    # TRL encodes prompts with the tokenizer's special tokens: the built tokenizer adds <s> itself,
    # so both sides see exactly the token ids of the transcript.
    dataset = Dataset.from_list(
        [{"prompt": prompt_text(world, case), "case_id": case.id} for case in world.train]
    )

    def reward(prompts, completions, case_id, **_):
        return [
            single_turn_reward(world, cases[cid], text)
            for text, cid in zip(completions, case_id, strict=True)
        ]

    config = GRPOConfig(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group,
        max_completion_length=192,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.01,  # torch AdamW's default, which ours uses
        adam_epsilon=1e-8,
        max_grad_norm=1.0,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=0.0,
        num_iterations=1,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type="dapo",
        scale_rewards="group",
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        fp16=False,
        seed=args.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer_class = GRPOTrainer if record is None else _recording_trainer(GRPOTrainer, record)
    trainer = trainer_class(
        model=model, reward_funcs=reward, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    return {"seconds_per_step": seconds / args.steps, "train_rewards": rewards}


_BATCH_KEYS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages")


def _recording_trainer(base, record: list):
    """A GRPOTrainer that keeps a copy of every batch its loss is computed on."""

    class Recording(base):
        def _compute_loss(self, model, inputs):
            record.append({key: inputs[key].detach().clone() for key in _BATCH_KEYS})
            return super()._compute_loss(model, inputs)

    return Recording


def replay(bundle, batches: list[dict], args) -> None:
    """Our update (``grpo_update``, the one ``grpo_step`` runs) on TRL's recorded batches, with
    AdamW as ``run_ours``."""
    from training.rl.lm.config import GRPOConfig
    from training.rl.lm.grpo import grpo_update

    model = bundle.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    config = GRPOConfig(
        cases_per_step=args.prompts,
        group_size=args.group,
        learning_rate=args.lr,
        microbatch_size=args.prompts * args.group,
    )
    for batch in batches:
        episodes = []
        for row in range(batch["prompt_ids"].shape[0]):
            prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()].tolist()
            completion = batch["completion_ids"][row][batch["completion_mask"][row].bool()].tolist()
            episodes.append(
                SimpleNamespace(
                    token_ids=prompt + completion,
                    agent_mask=[False] * len(prompt) + [True] * len(completion),
                    prompt_length=len(prompt),
                )
            )
        grpo_update(
            model,
            optimizer,
            episodes,
            batch["advantages"].float(),
            config=config,
            pad_token_id=bundle.tokenizer.pad_token_id,
        )


def _distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Euclidean distance between two models' parameters (same architecture)."""
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return sum(float((x.detach() - y.detach()).norm() ** 2) for x, y in pairs) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument("--eval-cases", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="seed of the start model")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="GRPO seeds, one run per side each"
    )
    parser.add_argument(
        "--replay", action="store_true", help="also replay TRL's batches through our update (see above)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    from training.rl.lm import LMTrainConfig, train
    from training.rl.lm.checkpoint import latest_lm_checkpoint, load_bundle

    world = claims_world()
    held_out = world.test[: args.eval_cases]
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        config = LMTrainConfig.from_dict(
            {
                "seed": args.seed,
                "model": BENCH_MODEL,
                "sft": {"steps": args.sft_steps, "batch_size": 8, "learning_rate": 5e-3},
                "grpo": {"steps": 0},
                "checkpoint_every": 10_000,
            }
        )
        train(
            config,
            env_factory=world.env_factory,
            train_cases=world.train,
            solver=world.solver,
            checkpoint_dir=Path(directory) / "sft",
        )
        checkpoint = latest_lm_checkpoint(Path(directory) / "sft")
        print(f"start model: {args.sft_steps} SFT steps in {time.perf_counter() - started:.0f}s")
        start_reward = evaluate(load_bundle(checkpoint), world, held_out)

        # For each GRPO seed, ours then TRL, each from a fresh copy of the same start model. The
        # machine is shared, so speed is compared on the median seconds per step; reward on the
        # mean over seeds, beside its spread (RL on 20 steps is noisy, one seed says little).
        ours: dict = {"timings": [], "eval": [], "train": []}
        trl: dict = {"timings": [], "eval": [], "train": []}
        replays: list[str] = []
        for seed in args.seeds:
            run_args = argparse.Namespace(**{**vars(args), "seed": seed})
            for side, runner in ((ours, run_ours), (trl, run_trl)):
                bundle = load_bundle(checkpoint)
                batches: list[dict] | None = [] if args.replay and runner is run_trl else None
                if runner is run_trl:
                    result = run_trl(bundle, world, run_args, str(Path(directory) / f"trl-{seed}"), batches)
                else:
                    result = run_ours(bundle, world, run_args)
                side["timings"].append(result["seconds_per_step"])
                side["train"].append(statistics.fmean(result["train_rewards"][-max(1, args.steps // 4) :]))
                side["eval"].append(evaluate(bundle, world, held_out))
                if batches is not None:
                    replayed = load_bundle(checkpoint)
                    replay(replayed, batches, run_args)
                    travelled = _distance(bundle.model, load_bundle(checkpoint).model)
                    replays.append(
                        f"seed {seed}: |replayed - TRL| / |TRL - start| = "
                        f"{_distance(replayed.model, bundle.model) / max(travelled, 1e-12):.3f}, held-out "
                        f"replayed {evaluate(replayed, world, held_out):.3f} vs TRL {side['eval'][-1]:.3f}"
                    )

    def spread(values: list[float]) -> str:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.3f} ± {std:.3f}"

    print(
        f"\nsingle-turn claims decisions: {args.steps} steps, {args.prompts} prompts x group {args.group}, "
        f"lr {args.lr}, seeds {args.seeds}, {bundle.parameter_count()} parameters"
    )
    print(f"held-out greedy reward of the start model: {start_reward:.3f} ({len(held_out)} test cases)")
    print(
        f"{'':6}{'s/step (median)':>16}{'per seed':>22}{'train reward':>16}{'held-out reward':>18}  per seed"
    )
    for name, side in (("ours", ours), ("TRL", trl)):
        print(
            f"{name:6}{statistics.median(side['timings']):>16.2f}"
            f"{', '.join(f'{t:.2f}' for t in side['timings']):>22}{spread(side['train']):>16}"
            f"{spread(side['eval']):>18}  {', '.join(f'{r:.3f}' for r in side['eval'])}"
        )
    for line in replays:
        print(f"TRL's batches through our update, {line}")
    speed = statistics.median(trl["timings"]) / statistics.median(ours["timings"])
    gap = statistics.fmean(ours["eval"]) - statistics.fmean(trl["eval"])
    noise = max(statistics.stdev(ours["eval"]), statistics.stdev(trl["eval"])) if len(args.seeds) > 1 else 0.0
    print(
        f"speed: ours is {speed:.2f}x TRL's steps per second (target >= 1.5x); held-out reward ours - TRL "
        f"= {gap:+.3f} against a seed-to-seed spread of {noise:.3f}"
    )


if __name__ == "__main__":
    main()
