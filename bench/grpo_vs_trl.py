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

``--same-draws`` runs our whole loop on TRL's random draws: as TRL's trainer generates, the
prompts of each step and the state of torch's random generator are recorded; then ``grpo_step``
(rollout, rewards, group advantages, update) runs from a fresh copy of the start model on the same
prompts in the same order, its rollouts sampled by transformers' ``generate`` with TRL's
generation config from the recorded generator state. Printed per seed: the share of completions
that come out token for token the same as TRL's, how far our model ends from TRL's (parameter
distance over TRL's own distance travelled) and the two held-out rewards. The same draws giving the
same model mean that a gap in reward between the two native runs comes from the random draws each
side made, not from how either samples, scores or learns.

    .venv/bin/python bench/grpo_vs_trl.py [--steps 20] [--group 4] [--prompts 4] [--sft-steps 150]
                                                  [--seeds 0 1 2] [--same-draws]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


def our_config(args):
    """Our GRPO settings for the bench: the same as TRL's side (see the module docstring)."""
    from training.rl.lm.config import GRPOConfig

    return GRPOConfig(
        steps=args.steps,
        cases_per_step=args.prompts,
        group_size=args.group,
        learning_rate=args.lr,
        temperature=1.0,
        max_new_tokens=192,
        microbatch_size=args.prompts * args.group,
    )


def run_ours(bundle, world, args) -> dict:
    from training.rl.lm.engines import TorchEngine
    from training.rl.lm.grpo import grpo_step
    from training.rl.lm.rollout import TokenCodec

    model = bundle.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    config = our_config(args)
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


def run_trl(bundle, world, args, output_dir: str, draws: list | None = None) -> dict:
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
    trainer_class = GRPOTrainer if draws is None else _recording_trainer(GRPOTrainer, draws)
    trainer = trainer_class(
        model=model, reward_funcs=reward, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    return {"seconds_per_step": seconds / args.steps, "train_rewards": rewards}


def _recording_trainer(base, draws: list):
    """A GRPOTrainer that records, for every generation, the prompts and torch's generator state
    (``draws``), and for every loss the completions it trained on."""

    class Recording(base):
        def _generate_single_turn(self, prompt_ids, *args, **kwargs):
            draws.append(
                {
                    "prompt_ids": [list(ids) for ids in prompt_ids],
                    "rng_state": torch.get_rng_state(),
                    "generation_config": self.generation_config,
                }
            )
            return super()._generate_single_turn(prompt_ids, *args, **kwargs)

        def _compute_loss(self, model, inputs):
            ids, mask = inputs["completion_ids"], inputs["completion_mask"].bool()
            draws[-1]["completions"] = sorted(row[keep].tolist() for row, keep in zip(ids, mask, strict=True))
            return super()._compute_loss(model, inputs)

    return Recording


class RecordedDrawsEngine:
    """Rollouts by transformers' ``generate`` from recorded generator states, one per call, as
    TRL's trainer samples: the same model, prompts and state give the same tokens."""

    name = "recorded-draws"

    def __init__(self, model, draws: list[dict], stop_token_ids) -> None:
        self.model = model
        self.states = [draw["rng_state"] for draw in draws]
        self.config = draws[0]["generation_config"]
        self.stop_token_ids = set(stop_token_ids)
        self.last: list = []  # the generations of the latest call

    def generate(self, prompts, *, max_new_tokens: int, temperature: float, seed: int):
        from training.rl.lm.engines import Generation, pad_left

        torch.set_rng_state(self.states.pop(0))
        ids_B_T, mask_B_T = pad_left(prompts, self.config.pad_token_id)
        with torch.no_grad():
            out_B_S = self.model.generate(
                input_ids=ids_B_T, attention_mask=mask_B_T, generation_config=self.config
            )
        generations = []
        for row in out_B_S[:, ids_B_T.shape[1] :].tolist():
            stop = next((i for i, token in enumerate(row) if token in self.stop_token_ids), None)
            tokens = row if stop is None else row[: stop + 1]
            generations.append(Generation(tokens, [0.0] * len(tokens), stop is not None))
        self.last = generations
        return generations

    def sync_weights(self, model) -> None:
        self.model = model

    def close(self) -> None:
        return None


def run_ours_on_draws(bundle, world, draws: list[dict], args) -> float:
    """``grpo_step`` on TRL's recorded prompts and generator states; the share of completions
    token for token the same as TRL's."""
    from training.rl.lm.grpo import grpo_step, sample_cases
    from training.rl.lm.rollout import TokenCodec

    model = bundle.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    config = our_config(args)
    codec = TokenCodec.from_bundle(bundle)
    by_prompt = {(*codec.prefix_ids, *codec.encode(prompt_text(world, case))): case for case in world.train}
    engine = RecordedDrawsEngine(model, draws, [bundle.tokenizer.eos_token_id, *bundle.stop_token_ids])
    same = total = 0
    for step, draw in enumerate(draws, start=1):
        wanted = [by_prompt[tuple(ids)] for ids in draw["prompt_ids"][:: args.group]]
        # grpo_step takes its cases in the order sample_cases walks them: lay TRL's out so.
        order = sample_cases(range(len(wanted)), seed=args.seed, step=step, count=len(wanted))
        cases = [None] * len(wanted)
        for position, index in enumerate(order):
            cases[index] = wanted[position]
        grpo_step(
            model=model,
            optimizer=optimizer,
            engine=engine,
            codec=codec,
            env_factory=single_turn_factory(world),
            cases=cases,
            config=config,
            seed=args.seed,
            step=step,
            pad_token_id=bundle.tokenizer.pad_token_id,
            max_length=1024,
        )
        ours = sorted(generation.token_ids for generation in engine.last)
        same += sum(a == b for a, b in zip(ours, draw["completions"], strict=True))
        total += len(ours)
    return same / max(total, 1)


def _distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Euclidean distance between two models' parameters (same architecture)."""
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return sum(float((x.detach() - y.detach()).norm() ** 2) for x, y in pairs) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument("--eval-cases", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="seed of the start model")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="GRPO seeds, one run per side each"
    )
    parser.add_argument(
        "--same-draws", action="store_true", help="also run our loop on TRL's random draws (see above)"
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
        start = load_bundle(checkpoint)
        start_reward = evaluate(start, world, held_out)

        # For each GRPO seed, ours then TRL, each from a fresh copy of the same start model. The
        # machine is shared, so speed is compared on the median seconds per step; reward on the
        # mean over seeds, beside its spread (RL on 20 steps is noisy, one seed says little).
        ours: dict = {"timings": [], "eval": [], "train": []}
        trl: dict = {"timings": [], "eval": [], "train": []}
        same_draws: list[dict] = []
        for seed in args.seeds:
            run_args = argparse.Namespace(**{**vars(args), "seed": seed})
            for side, runner in ((ours, run_ours), (trl, run_trl)):
                bundle = load_bundle(checkpoint)
                draws: list[dict] | None = [] if args.same_draws and runner is run_trl else None
                if runner is run_trl:
                    result = run_trl(bundle, world, run_args, str(Path(directory) / f"trl-{seed}"), draws)
                else:
                    result = run_ours(bundle, world, run_args)
                side["timings"].append(result["seconds_per_step"])
                side["train"].append(statistics.fmean(result["train_rewards"][-max(1, args.steps // 4) :]))
                side["eval"].append(evaluate(bundle, world, held_out))
                if draws is not None:
                    on_draws = load_bundle(checkpoint)
                    same = run_ours_on_draws(on_draws, world, draws, run_args)
                    same_draws.append(
                        {
                            "seed": seed,
                            "same": same,
                            "distance": _distance(on_draws.model, bundle.model)
                            / max(_distance(bundle.model, start.model), 1e-12),
                            "ours": evaluate(on_draws, world, held_out),
                            "trl": side["eval"][-1],
                        }
                    )

    def spread(values: list[float]) -> str:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.3f} ± {std:.3f}"

    print(
        f"\nsingle-turn claims decisions: {args.steps} steps, {args.prompts} prompts x group {args.group}, "
        f"lr {args.lr}, seeds {args.seeds}, {bundle.parameter_count()} parameters"
    )
    print(f"held-out greedy reward of the start model: {start_reward:.3f} ({len(held_out)} test cases)")
    print(f"{'':6}{'s/step (median)':>16}{'train reward':>18}{'held-out reward':>18}")
    for name, side in (("ours", ours), ("TRL", trl)):
        print(
            f"{name:6}{statistics.median(side['timings']):>16.2f}{spread(side['train']):>18}"
            f"{spread(side['eval']):>18}"
        )
    for name, side in (("ours", ours), ("TRL", trl)):
        print(f"{name} s/step per seed: {', '.join(f'{t:.2f}' for t in side['timings'])}")
        print(f"{name} held-out reward per seed: {', '.join(f'{r:.3f}' for r in side['eval'])}")
    speed = statistics.median(trl["timings"]) / statistics.median(ours["timings"])
    gap = statistics.fmean(ours["eval"]) - statistics.fmean(trl["eval"])
    if len(args.seeds) > 1:
        spread_ = max(statistics.stdev(ours["eval"]), statistics.stdev(trl["eval"]))
        error = (
            (statistics.variance(ours["eval"]) + statistics.variance(trl["eval"])) / len(args.seeds)
        ) ** 0.5
    else:
        spread_ = error = 0.0
    print(
        f"speed: ours is {speed:.2f}x TRL's steps per second (target >= 1.5x); held-out reward ours - TRL "
        f"= {gap:+.3f} ± {error:.3f} (standard error over {len(args.seeds)} seeds; seed-to-seed spread "
        f"{spread_:.3f})"
    )
    for row in same_draws:
        print(
            f"our loop on TRL's draws, seed {row['seed']}: {row['same']:.0%} of completions the same, "
            f"|ours - TRL| / |TRL - start| = {row['distance']:.4f}, held-out ours {row['ours']:.3f} "
            f"vs TRL {row['trl']:.3f}"
        )
    if same_draws:
        gaps = [row["ours"] - row["trl"] for row in same_draws]
        print(
            f"on the same draws: held-out reward ours - TRL = {statistics.fmean(gaps):+.4f} "
            f"(largest |gap| {max(abs(g) for g in gaps):.4f}), "
            f"{statistics.fmean(row['same'] for row in same_draws):.0%} of completions the same"
        )


if __name__ == "__main__":
    main()
