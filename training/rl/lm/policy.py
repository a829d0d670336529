"""A language model as an engine Policy: ``reset(seed)``, ``act(observation) -> Action``.

You are at the language-model policy's service counter. :class:`LMPolicy` keeps the episode's
transcript (``rollout.EpisodeTokens``), appends each observation as text and asks its backend
for the next line, which it parses into the action (an unparsable line becomes a parse-error
action the environment penalises and the Run records). Two backends:

- :class:`LocalBackend` — the checkpoint in this process (``TorchEngine``), greedy by default:
  evaluation of a new version on the training worker, tests.
- :class:`ServerBackend` — the version's vLLM server over HTTP (``client.ModelServerClient``):
  live decisions on the ``decisions`` workers. The prompt is the transcript's text, which the
  server tokenizes exactly as training did (built tokenizers isolate the newline, so the
  segment-by-segment encoding of training and the whole-text encoding agree).

``confidence`` on the action is the probability the model gave to the action part of its line
(everything before ``BECAUSE``).
"""

from __future__ import annotations

from typing import Any

from workflows.engine import Action, Observation, WorkflowSpec

from .client import ModelServerClient, line_confidence
from .engines import TorchEngine
from .rollout import EpisodeTokens, TokenCodec
from .textio import ParsedLine

__all__ = ["LMPolicy", "LocalBackend", "ServerBackend"]


def _text_only_codec() -> TokenCodec:
    return TokenCodec(
        encode=lambda text: [], decode=lambda ids: "", prefix_ids=(), stop_token_ids=(), newline_ids=()
    )


class LocalBackend:
    """Generates with the model in this process."""

    def __init__(
        self, bundle: Any, *, max_new_tokens: int = 192, max_length: int = 1024, temperature: float = 0.0
    ):
        self.bundle = bundle
        self.codec = TokenCodec.from_bundle(bundle)
        self.engine = TorchEngine(
            bundle.model,
            stop_token_ids=bundle.stop_token_ids,
            pad_token_id=int(bundle.tokenizer.pad_token_id),
        )
        self.max_new_tokens = max_new_tokens
        self.max_length = max_length
        self.temperature = temperature
        self.seed = 0

    def next_line(self, tokens: EpisodeTokens) -> ParsedLine:
        room = self.max_length - len(tokens.token_ids) - 1
        if room < 4:  # the transcript fills the model's context: nothing sensible can follow
            return tokens.transcript.act("")
        generation = self.engine.generate(
            [tokens.token_ids],
            max_new_tokens=min(self.max_new_tokens, room),
            temperature=self.temperature,
            seed=self.seed,
        )[0]
        self.seed += 1
        pieces = [self.bundle.decode([token]) for token in generation.token_ids]
        return tokens.record_generation(generation, confidence=line_confidence(pieces, generation.logprobs))


class ServerBackend:
    """Asks the version's model server (vLLM, OpenAI-compatible) for each line."""

    codec = _text_only_codec()

    def __init__(self, client: ModelServerClient) -> None:
        self.client = client
        self.seed = 0

    def next_line(self, tokens: EpisodeTokens) -> ParsedLine:
        completion = self.client.complete(tokens.transcript.text)  # ModelServerUnavailable propagates
        return tokens.record_text(completion.text, confidence=completion.confidence)


class LMPolicy:
    """Engine ``Policy`` over a language model and the text interface."""

    def __init__(self, spec: WorkflowSpec, backend: LocalBackend | ServerBackend) -> None:
        self.spec = spec
        self.backend = backend
        self._tokens: EpisodeTokens | None = None
        self.last_line: ParsedLine | None = None

    def reset(self, seed: int | None = None) -> None:
        self._tokens = None
        if seed is not None:
            self.backend.seed = seed

    def act(self, observation: Observation) -> Action:
        if self._tokens is None or observation.step_index == 0:
            self._tokens = EpisodeTokens.start(self.spec, self.backend.codec)
        self._tokens.observe(observation)
        parsed = self.backend.next_line(self._tokens)
        self.last_line = parsed
        return parsed.action

    @property
    def transcript(self) -> str:
        return self._tokens.transcript.text if self._tokens is not None else ""
