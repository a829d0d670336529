"""Multi-turn episodes of a language model in workflow environments, as token sequences.

You are where the language model meets the environment. :class:`EpisodeTokens` keeps one
episode's transcript (``textio.Transcript``) and its token ids side by side, with a mask of the
tokens the model wrote itself — the only tokens SFT and GRPO put a loss on. The environment's
text (case, results, errors) is encoded segment by segment as it arrives; the model's tokens
are kept exactly as sampled, so the log-probabilities a trainer recomputes are those of the
tokens really generated.

:func:`run_episodes` plays many episodes at once with a rollout engine: at every turn the
prompts of all unfinished episodes go to the engine in one batch, each generated line is parsed
(an unparsable one becomes a parse-error action), stepped in its own environment, and the next
observation is appended. An episode that would outgrow ``max_length`` tokens stops generating:
the rest of its step budget is spent as parse errors (no model call), so the environment ends
and scores it as usual (truncated, no decision).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workflows.engine import Action, CaseData, Environment, Observation, Trajectory, WorkflowSpec

from .engines import Generation, RolloutEngine
from .textio import MAX_TEXT_CHARS, ParsedLine, Transcript, parse_action

__all__ = ["Episode", "EpisodeTokens", "TokenCodec", "run_episodes"]


@dataclass(frozen=True, slots=True)
class TokenCodec:
    """What the rollout needs of a tokenizer: encode and decode without special tokens, the ids
    every transcript starts with, and the newline-ending stop ids."""

    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]
    prefix_ids: tuple[int, ...]
    stop_token_ids: tuple[int, ...]
    newline_ids: tuple[int, ...]

    @classmethod
    def from_bundle(cls, bundle: Any) -> TokenCodec:
        return cls(
            encode=bundle.encode,
            decode=bundle.decode,
            prefix_ids=tuple(bundle.bos_ids),
            stop_token_ids=tuple(bundle.stop_token_ids),
            newline_ids=tuple(bundle.encode("\n")),
        )


@dataclass(slots=True)
class EpisodeTokens:
    """One episode as a transcript and as tokens, with the model's own tokens marked."""

    transcript: Transcript
    codec: TokenCodec
    token_ids: list[int] = field(default_factory=list)
    agent_mask: list[bool] = field(default_factory=list)
    sample_logprobs: list[float] = field(default_factory=list)

    @classmethod
    def start(
        cls, spec: WorkflowSpec, codec: TokenCodec, *, max_text_chars: int = MAX_TEXT_CHARS
    ) -> EpisodeTokens:
        tokens = cls(Transcript(spec, max_text_chars=max_text_chars), codec)
        tokens._extend(list(codec.prefix_ids), agent=False)
        return tokens

    def _extend(self, ids: Sequence[int], *, agent: bool, logprobs: Sequence[float] | None = None) -> None:
        self.token_ids.extend(ids)
        self.agent_mask.extend([agent] * len(ids))
        self.sample_logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))

    def observe(self, observation: Observation) -> None:
        text = self.transcript.observe(observation)
        if text:
            self._extend(self.codec.encode(text), agent=False)

    def record_generation(self, generation: Generation, *, confidence: float = 1.0) -> ParsedLine:
        """Append the model's sampled tokens (a newline is added, as environment text, when the
        line ran out of tokens) and parse its line."""
        self._extend(generation.token_ids, agent=True, logprobs=generation.logprobs)
        if not generation.stopped:
            self._extend(self.codec.newline_ids, agent=False)
        return self.transcript.act(self.codec.decode(generation.token_ids), confidence=confidence)

    def record_text(self, text: str, *, confidence: float = 1.0) -> ParsedLine:
        """Append a line the model wrote elsewhere (a model server): re-encoded as the model's."""
        line = text.split("\n", 1)[0]
        self._extend(self.codec.encode(line + "\n"), agent=True)
        return self.transcript.act(line, confidence=confidence)

    def record_action(self, action: Action) -> None:
        """Append a demonstration's action as the model's line."""
        self.transcript.act_action(action)
        self._extend(self.codec.encode(self.transcript.segments[-1][0]), agent=True)

    @property
    def agent_tokens(self) -> int:
        return sum(self.agent_mask)


@dataclass(slots=True)
class Episode:
    """A finished episode: tokens, the environment's verdict, and how the model behaved."""

    case: CaseData
    tokens: EpisodeTokens
    trajectory: Trajectory
    reward: float  # the environment's return: rubric total, shaping, step costs, penalties
    score: Any  # the rubric's Score (None without a rubric)
    turns: int  # model lines written
    parse_errors: int
    cut: bool  # stopped generating at max_length

    @property
    def token_ids(self) -> list[int]:
        return self.tokens.token_ids

    @property
    def agent_mask(self) -> list[bool]:
        return self.tokens.agent_mask

    @property
    def prompt_length(self) -> int:
        """Tokens before the model's first: the case as the episode opened (shared by its group)."""
        mask = self.tokens.agent_mask
        return mask.index(True) if True in mask else len(mask) - 1

    @property
    def score_total(self) -> float:
        return float(self.score.total) if self.score is not None else 0.0


@dataclass(slots=True)
class _Live:
    case: CaseData
    env: Environment
    tokens: EpisodeTokens
    observation: Observation
    reward: float = 0.0
    turns: int = 0
    parse_errors: int = 0
    cut: bool = False
    done: bool = False
    score: Any = None


def run_episodes(
    engine: RolloutEngine,
    codec: TokenCodec,
    env_factory: Callable[[], Environment],
    cases: Sequence[CaseData],
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    max_length: int,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> list[Episode]:
    """Play one episode per entry of ``cases`` (repeat a case for a group), all turns batched."""
    live: list[_Live] = []
    for case in cases:
        env = env_factory()
        observation = env.reset(case)
        tokens = EpisodeTokens.start(env.spec, codec, max_text_chars=max_text_chars)
        tokens.observe(observation)
        live.append(_Live(case, env, tokens, observation))
    turn = 0
    while True:
        active = [item for item in live if not item.done]
        if not active:
            break
        asking: list[_Live] = []
        for item in active:
            budget = max_length - len(item.tokens.token_ids) - 2
            if budget < max_new_tokens // 2:
                item.cut = True
                _spend_budget(item)
            else:
                asking.append(item)
        if not asking:
            continue
        generations = engine.generate(
            [item.tokens.token_ids for item in asking],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed * 1_000 + turn,
        )
        for item, generation in zip(asking, generations, strict=True):
            parsed = item.tokens.record_generation(generation)
            _step(item, parsed)
        turn += 1
    return [
        Episode(
            case=item.case,
            tokens=item.tokens,
            trajectory=item.env.trajectory,
            reward=item.reward,
            score=item.score,
            turns=item.turns,
            parse_errors=item.parse_errors,
            cut=item.cut,
        )
        for item in live
    ]


def _step(item: _Live, parsed: ParsedLine) -> None:
    item.turns += 1
    item.parse_errors += int(not parsed.ok)
    observation, reward, done, info = item.env.step(parsed.action)
    item.reward += reward
    item.observation = observation
    if done:
        item.done = True
        item.score = info.get("score")
    else:
        item.tokens.observe(observation)


def _spend_budget(item: _Live) -> None:
    """Out of tokens: end the episode through the environment, without asking the model."""
    filler = parse_action("")
    while not item.done:
        observation, reward, done, info = item.env.step(filler.action)
        item.reward += reward
        item.observation = observation
        if done:
            item.done = True
            item.score = info.get("score")
