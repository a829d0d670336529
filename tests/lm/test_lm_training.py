"""Language-model training: demonstrations, SFT that teaches the format, GRPO's objective and step,
self-describing checkpoints and resumption."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch

from tests.lm.conftest import TINY_MODEL, require

require("transformers")
require("tokenizers")

from training.rl.lm import LMTrainConfig, read_lm_checkpoint, train  # noqa: E402
from training.rl.lm.checkpoint import LMCheckpointError, latest_lm_checkpoint, load_bundle  # noqa: E402
from training.rl.lm.config import GRPOConfig  # noqa: E402
from training.rl.lm.demos import demonstrations, encode_demonstrations  # noqa: E402
from training.rl.lm.engines import TorchEngine  # noqa: E402
from training.rl.lm.grpo import (  # noqa: E402
    episode_metrics,
    group_advantages,
    grpo_loss,
    grpo_step,
    sample_cases,
)
from training.rl.lm.modeling import workflow_names  # noqa: E402
from training.rl.lm.rollout import TokenCodec, run_episodes  # noqa: E402
from workflows.engine import Outcome  # noqa: E402


def _greedy_episodes(bundle, world, cases):
    engine = TorchEngine(
        bundle.model, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
    )
    return run_episodes(
        engine,
        TokenCodec.from_bundle(bundle),
        world.env_factory,
        cases,
        max_new_tokens=192,
        temperature=0.0,
        seed=0,
        max_length=TINY_MODEL["max_length"],
    )


def test_the_built_tokenizer_keeps_every_workflow_name_whole_and_round_trips(sft_run, lm_world):
    tokenizer = sft_run.bundle.tokenizer
    for name in workflow_names(lm_world.spec):
        for text in (name, " " + name):
            assert len(tokenizer.encode(text, add_special_tokens=False)) == 1, text
    text = 'DECIDE approve {"amount": 1899.32} BECAUSE payout 1,899.32\n'
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert tokenizer.convert_ids_to_tokens(ids).count("Ċ") == 1 and sft_run.bundle.stop_token_ids == [ids[-1]]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert all(sum(c.isdigit() for c in piece) <= 1 for piece in pieces)  # a token holds at most one digit
    assert sum(c.isdigit() for piece in pieces for c in piece) == 12


def test_demonstrations_come_from_the_solver_and_reviewer_labels_win(lm_world):
    cases = lm_world.train_cases[:6]
    demos = demonstrations(lm_world.env_factory, cases, solver=lm_world.solver)
    assert [d.source for d in demos] == ["solver"] * 6
    assert all(d.actions[-1].name == c.expected.decision for d, c in zip(demos, cases, strict=True))
    # A reviewer corrected the first case: their outcome is the demonstration's decision.
    corrected = Outcome("escalate", {"reason": "needs_investigation"})
    relabelled = [type(cases[0])(cases[0].id, cases[0].fields, corrected, 0), *cases[1:]]
    demos = demonstrations(
        lm_world.env_factory, relabelled, solver=lm_world.solver, review_case_ids=frozenset({cases[1].id})
    )
    assert demos[0].source == "label" and demos[0].actions[-1].name == "escalate"
    assert demos[0].actions[-1].arguments == {"reason": "needs_investigation"}
    assert "escalate" in demos[0].actions[-1].explanation
    assert demos[1].source == "label" and demos[1].actions[-1].name == cases[1].expected.decision


def test_only_the_models_own_lines_are_training_targets(sft_run, lm_world):
    bundle = sft_run.bundle
    codec = TokenCodec.from_bundle(bundle)
    demos = demonstrations(lm_world.env_factory, lm_world.train_cases[:3], solver=lm_world.solver)
    for demo, encoded in zip(demos, encode_demonstrations(demos, lm_world.env_factory, codec), strict=True):
        agent_text = bundle.decode(
            [t for t, agent in zip(encoded.token_ids, encoded.agent_mask, strict=True) if agent]
        )
        lines = agent_text.splitlines()
        assert len(lines) == len(demo.actions)
        assert all(line.startswith(("CALL ", "DECIDE ")) for line in lines)
        context = bundle.decode(
            [t for t, a in zip(encoded.token_ids, encoded.agent_mask, strict=True) if not a]
        )
        assert "RESULT lookup_policy" in context and "CALL" not in context


def test_a_short_sft_on_a_small_sample_writes_parsable_lines(sft_run, lm_world):
    """After SFT the model writes the documented line format: under 1% of its lines fail to parse."""
    losses = [m["loss/sft"] for m in sft_run.history]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    episodes = _greedy_episodes(sft_run.bundle, lm_world, lm_world.train_cases[:16])
    metrics = episode_metrics(episodes)
    lines = sum(e.turns for e in episodes)
    assert lines >= 3 * len(episodes)
    assert metrics["parse_error/rate"] < 0.01, metrics
    assert metrics["score/looked_up_policy"] > 0.5, metrics


def test_the_checkpoint_describes_itself_and_is_verified(sft_run, lm_world, tmp_path):
    checkpoint = read_lm_checkpoint(sft_run.checkpoint)
    metadata = checkpoint.metadata
    assert metadata["kind"] == "caseloop.training.rl.lm" and metadata["phase"] == "sft"
    assert metadata["step"] == sft_run.steps == 120 and metadata["spec_name"] == "claims"
    assert metadata["stop_token_ids"] == sft_run.bundle.stop_token_ids
    assert metadata["config"]["model"]["hidden_size"] == TINY_MODEL["hidden_size"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "trainer/optimizer.pt"} <= set(
        metadata["files"]
    )
    assert metadata["weights_sha256"] == metadata["files"]["model.safetensors"]
    checkpoint.check_spec(lm_world.spec)
    # A loaded checkpoint computes what the trained model computes.
    loaded = load_bundle(checkpoint)
    ids = torch.tensor([sft_run.bundle.encode("CALL lookup_policy {}\n")])
    with torch.no_grad():
        assert torch.allclose(loaded.model(ids).logits, sft_run.bundle.model.eval()(ids).logits, atol=1e-5)
    # A corrupted copy is refused, naming the file.
    tampered = tmp_path / "copy"
    shutil.copytree(checkpoint.path, tampered)
    config = json.loads((tampered / "config.json").read_text())
    config["rms_norm_eps"] = 0.1
    (tampered / "config.json").write_text(json.dumps(config))
    with pytest.raises(LMCheckpointError, match=r"config\.json"):
        read_lm_checkpoint(tampered)


def test_group_advantages_are_normalised_within_each_group():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5, 0.5])
    advantages, zero_std = group_advantages(rewards, group_size=4, scale=True)
    assert zero_std == 1
    std = (4 * 0.25 / 3) ** 0.5  # the sample std of 1, 0, 1, 0
    assert torch.allclose(advantages[:4], torch.tensor([0.5, -0.5, 0.5, -0.5]) / std, atol=1e-3)
    assert torch.all(advantages[4:] == 0)
    unscaled, _ = group_advantages(rewards, group_size=4, scale=False)
    assert torch.allclose(unscaled[:4], torch.tensor([0.5, -0.5, 0.5, -0.5]))


def test_grpo_walks_shuffled_passes_over_the_cases_and_draws_the_same_ones_again():
    cases = list(range(10))
    drawn = [sample_cases(cases, seed=3, step=step, count=4) for step in range(1, 11)]
    walk = [case for step_cases in drawn for case in step_cases]
    passes = [walk[i : i + 10] for i in range(0, 40, 10)]
    assert all(sorted(one_pass) == cases for one_pass in passes)  # every case once per pass
    assert len({tuple(one_pass) for one_pass in passes}) == 4  # a new order each pass
    assert drawn == [sample_cases(cases, seed=3, step=step, count=4) for step in range(1, 11)]
    assert drawn != [sample_cases(cases, seed=4, step=step, count=4) for step in range(1, 11)]
    assert sample_cases([], seed=3, step=1, count=4) == []


def test_the_grpo_loss_counts_only_agent_tokens_and_a_kl_to_itself_is_zero(sft_run, lm_world):
    bundle = sft_run.bundle
    engine = TorchEngine(
        bundle.model, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
    )
    episodes = run_episodes(
        engine,
        TokenCodec.from_bundle(bundle),
        lm_world.env_factory,
        lm_world.train_cases[:2],
        max_new_tokens=64,
        temperature=1.0,
        seed=1,
        max_length=1024,
    )
    config = GRPOConfig(kl_coef=0.5)
    advantages = torch.tensor([1.0, -1.0])
    tokens = sum(sum(e.agent_mask[1:]) for e in episodes)
    with torch.no_grad():
        from training.rl.lm.engines import sequence_logprobs

        reference = sequence_logprobs(
            bundle.model, [e.token_ids for e in episodes], pad_token_id=bundle.tokenizer.pad_token_id
        )
    loss, stats = grpo_loss(
        bundle.model,
        episodes,
        advantages,
        config=config,
        pad_token_id=bundle.tokenizer.pad_token_id,
        total_agent_tokens=tokens,
        ref_logp_B_T=reference,
    )
    assert stats["kl_sum"] == pytest.approx(0.0, abs=1e-5)
    assert stats["clipped_sum"] == 0  # the ratio is 1 on the rollout's own tokens
    # The ratio is 1, so each agent token contributes -A: (-n_0 + n_1) / (n_0 + n_1).
    per_episode = [sum(e.agent_mask[1:]) for e in episodes]
    assert loss.item() == pytest.approx((-per_episode[0] + per_episode[1]) / tokens, abs=1e-4)
    # No agent tokens, no loss, no gradient.
    silent = [copy.copy(e) for e in episodes]
    for episode in silent:
        episode.tokens = copy.copy(episode.tokens)
        episode.tokens.agent_mask = [False] * len(episode.token_ids)
    bundle.model.zero_grad()
    loss, _ = grpo_loss(
        bundle.model,
        silent,
        advantages,
        config=GRPOConfig(),
        pad_token_id=bundle.tokenizer.pad_token_id,
        total_agent_tokens=tokens,
    )
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or torch.all(p.grad == 0) for p in bundle.model.parameters())
    bundle.model.zero_grad()


def test_a_grpo_step_samples_groups_scores_them_and_moves_the_parameters(sft_run, lm_world):
    bundle = sft_run.bundle
    model = copy.deepcopy(bundle.model)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    engine = TorchEngine(
        model, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
    )
    config = GRPOConfig(cases_per_step=2, group_size=4, temperature=1.5, max_new_tokens=64, update_epochs=2)
    metrics = grpo_step(
        model=model,
        optimizer=optimizer,
        engine=engine,
        codec=TokenCodec.from_bundle(bundle),
        env_factory=lm_world.env_factory,
        cases=lm_world.train_cases,
        config=config,
        seed=0,
        step=1,
        pad_token_id=bundle.tokenizer.pad_token_id,
        max_length=1024,
    )
    for key in (
        "reward/mean",
        "reward/std",
        "score/mean",
        "score/right_outcome",
        "parse_error/rate",
        "loss/policy",
        "clip/fraction",
        "optim/grad_norm",
        "time/step_s",
        "groups/zero_std",
    ):
        assert key in metrics, key
    assert metrics["reward/std"] > 0
    assert 0 <= metrics["parse_error/rate"] <= 1
    moved = sum(float((p.detach() - b).abs().sum()) for p, b in zip(model.parameters(), before, strict=True))
    assert moved > 0


def test_training_stops_cleanly_and_resumes_exactly_where_it_stopped(lm_world, tmp_path):
    config = LMTrainConfig.from_dict(
        {
            "seed": 5,
            "model": dict(TINY_MODEL, layers=1, tokenizer_cases=16),
            "sft": {"steps": 4, "batch_size": 2, "warmup_steps": 1},
            "grpo": {"steps": 2, "cases_per_step": 1, "group_size": 2, "max_new_tokens": 24, "kl_coef": 0.1},
            "checkpoint_every": 2,
        }
    )
    kwargs = dict(
        env_factory=lm_world.env_factory, train_cases=lm_world.train_cases[:8], solver=lm_world.solver
    )
    whole = train(config, checkpoint_dir=tmp_path / "whole", **kwargs)
    assert whole.steps == 6 and not whole.stopped and whole.history[-1]["phase/grpo"] == 1.0
    calls = {"n": 0}

    def stop_after_five_polls():
        calls["n"] += 1
        return calls["n"] > 5

    first = train(config, checkpoint_dir=tmp_path / "split", should_stop=stop_after_five_polls, **kwargs)
    assert first.stopped and first.steps == 5
    assert latest_lm_checkpoint(tmp_path / "split").step == 5
    second = train(config, checkpoint_dir=tmp_path / "split", **kwargs)
    assert second.resumed_from == 5 and second.steps == 6 and len(second.history) == 1
    untimed = lambda metrics: {k: v for k, v in metrics.items() if not k.startswith("time/")}  # noqa: E731
    assert untimed(second.history[0]) == pytest.approx(untimed(whole.history[-1]), rel=1e-4, abs=1e-6)
    for a, b in zip(second.bundle.model.parameters(), whole.bundle.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_grpo_update_makes_better_than_average_episodes_more_likely(sft_run, lm_world):
    """The direction of learning: after one update on a group, the episodes with a positive
    advantage gained log-probability relative to those with a negative one."""
    from training.rl.lm.engines import sequence_logprobs

    bundle = sft_run.bundle
    model = copy.deepcopy(bundle.model)
    pad = bundle.tokenizer.pad_token_id
    engine = TorchEngine(model, stop_token_ids=bundle.stop_token_ids, pad_token_id=pad)
    case = lm_world.train_cases[1]
    episodes = run_episodes(
        engine,
        TokenCodec.from_bundle(bundle),
        lm_world.env_factory,
        [case] * 8,
        max_new_tokens=192,
        temperature=2.0,
        seed=7,
        max_length=1024,
    )
    rewards = torch.tensor([e.reward for e in episodes])
    advantages, _ = group_advantages(rewards, group_size=8, scale=True)
    assert (advantages > 0).any() and (advantages < 0).any(), rewards

    def agent_logprob():
        with torch.no_grad():
            logp = sequence_logprobs(model, [e.token_ids for e in episodes], pad_token_id=pad)
        return torch.stack(
            [
                (logp[i, : len(e.token_ids) - 1] * torch.tensor(e.agent_mask[1:], dtype=torch.float)).sum()
                for i, e in enumerate(episodes)
            ]
        )

    before = agent_logprob()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss, _ = grpo_loss(
        model,
        episodes,
        advantages,
        config=GRPOConfig(),
        pad_token_id=pad,
        total_agent_tokens=sum(sum(e.agent_mask[1:]) for e in episodes),
    )
    loss.backward()
    optimizer.step()
    gained = agent_logprob() - before
    assert gained[advantages > 0].mean() > gained[advantages < 0].mean() + 1e-3, (gained, advantages)


def test_sharing_a_groups_prompt_changes_neither_logprobs_nor_gradients(sft_run, lm_world):
    from training.rl.lm.engines import sequence_logprobs

    bundle = sft_run.bundle
    model = copy.deepcopy(bundle.model)
    pad = bundle.tokenizer.pad_token_id
    engine = TorchEngine(model, stop_token_ids=bundle.stop_token_ids, pad_token_id=pad)
    episodes = run_episodes(
        engine,
        TokenCodec.from_bundle(bundle),
        lm_world.env_factory,
        [lm_world.train_cases[0]] * 3 + [lm_world.train_cases[4]] * 2,
        max_new_tokens=64,
        temperature=1.5,
        seed=2,
        max_length=1024,
    )
    sequences = [e.token_ids for e in episodes]
    mask = torch.zeros(len(episodes), max(len(s) for s in sequences) - 1)
    for row, episode in enumerate(episodes):
        mask[row, : len(episode.agent_mask) - 1] = torch.tensor(episode.agent_mask[1:], dtype=torch.float)
    grads = []
    for prefixes in (None, [e.prompt_length for e in episodes]):
        model.zero_grad()
        logp = sequence_logprobs(model, sequences, pad_token_id=pad, prefix_lengths=prefixes)
        (logp * mask).sum().backward()
        grads.append(([p.grad.clone() for p in model.parameters()], (logp * mask).detach()))
    (full_grads, full_logp), (shared_grads, shared_logp) = grads
    assert torch.allclose(full_logp, shared_logp, atol=1e-5)
    for a, b in zip(full_grads, shared_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
