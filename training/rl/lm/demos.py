"""Demonstrations for supervised fine-tuning: whole episodes written in the text format.

You are in the language-model policy's library of worked examples. A demonstration is a case
and the actions an expert would take on it, replayed in the environment so every tool result
is real. Two sources:

- the workflow's **reference solver** (the claims pack's ``ClaimsSolver``) on labelled train
  cases: its tool calls, decision and explanation;
- **reviewer labels** (cases with source ``review``: an approved or corrected live decision):
  the solver's checks (or, without a solver, every tool in dependency order), then the
  reviewer's outcome, explained by the facts the checks revealed. Whenever the solver's own
  decision differs from a case's expected outcome, the expected outcome wins the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workflows.engine import Action, CaseData, Environment, Outcome, Policy, WorkflowSpec
from workflows.engine.expressions import format_value

from .rollout import EpisodeTokens, TokenCodec
from .textio import MAX_TEXT_CHARS, Transcript

__all__ = ["Demonstration", "demonstration_texts", "demonstrations", "encode_demonstrations"]


@dataclass(frozen=True, slots=True)
class Demonstration:
    case: CaseData
    actions: tuple[Action, ...]
    source: str  # "solver" or "label"


def _same_outcome(decision: Action | None, expected: Outcome) -> bool:
    if decision is None or decision.name != expected.decision:
        return False
    for name, want in expected.arguments.items():
        got = decision.arguments.get(name)
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            if not isinstance(got, (int, float)) or abs(float(got) - float(want)) > 0.01:
                return False
        elif str(got).lower() != str(want).lower():
            return False
    return True


def _tools_in_order(spec: WorkflowSpec) -> list[str]:
    done: list[str] = []
    pending = list(spec.tool_names)
    while pending:
        for name in pending:
            if all(required in done for required in spec.tool(name).requires):
                done.append(name)
                pending.remove(name)
                break
        else:  # a cycle cannot happen in a valid spec; keep the rest in spec order
            done += pending
            break
    return done


def _label_explanation(expected: Outcome, revealed: dict[str, dict]) -> str:
    facts = []
    for tool, result in revealed.items():
        for key, value in (result or {}).items():
            if isinstance(value, bool) or value is None or value == 0 or value == "":
                continue
            facts.append(f"{tool} {key} {format_value(value)}")
    arguments = ", ".join(f"{k} {format_value(v)}" for k, v in expected.arguments.items())
    head = f"Decided {expected.decision}" + (f" ({arguments})" if arguments else "")
    return f"{head} on the checked facts: " + "; ".join(facts[:6]) + "."


def demonstrations(
    env_factory: Callable[[], Environment],
    cases: Sequence[CaseData],
    *,
    solver: Policy | None,
    review_case_ids: frozenset[str] = frozenset(),
) -> list[Demonstration]:
    """One demonstration per labelled case (cases without an expected outcome are skipped)."""
    env = env_factory()
    result: list[Demonstration] = []
    for case in cases:
        if case.expected is None:
            continue
        actions: list[Action] = []
        observation = env.reset(case)
        done = False
        if solver is not None:
            solver.reset(0)
            while not done:
                action = solver.act(observation)
                if action.is_decision:
                    break
                actions.append(action)
                observation, _, done, _ = env.step(action)
            solver_decision = None if done else action
        else:
            for name in _tools_in_order(env.spec):
                action = Action.tool(name)
                actions.append(action)
                observation, _, done, _ = env.step(action)
                if done:
                    break
            solver_decision = None
        if done:  # the checks alone used up the step budget: nothing worth imitating
            continue
        from_solver = _same_outcome(solver_decision, case.expected) and case.id not in review_case_ids
        if from_solver and solver_decision is not None:
            decision = solver_decision
        else:
            revealed = {name: dict(value) for name, value in observation.revealed.items()}
            decision = Action.decide(
                case.expected.decision,
                dict(case.expected.arguments),
                _label_explanation(case.expected, revealed),
            )
        result.append(Demonstration(case, (*actions, decision), "solver" if from_solver else "label"))
    return result


def encode_demonstrations(
    demos: Sequence[Demonstration],
    env_factory: Callable[[], Environment],
    codec: TokenCodec,
    *,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> list[EpisodeTokens]:
    """Replay each demonstration in the environment and encode it (agent lines masked in)."""
    env = env_factory()
    encoded: list[EpisodeTokens] = []
    for demo in demos:
        observation = env.reset(demo.case)
        tokens = EpisodeTokens.start(env.spec, codec, max_text_chars=max_text_chars)
        for action in demo.actions:
            tokens.observe(observation)
            tokens.record_action(action)
            observation, _, done, _ = env.step(action)
            if done:
                break
        encoded.append(tokens)
    return encoded


def demonstration_texts(
    demos: Sequence[Demonstration],
    env_factory: Callable[[], Environment],
    *,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> list[str]:
    """The demonstrations as plain transcripts (the tokenizer's training corpus)."""
    env = env_factory()
    texts = []
    for demo in demos:
        observation = env.reset(demo.case)
        transcript = Transcript(env.spec, max_text_chars=max_text_chars)
        for action in demo.actions:
            transcript.observe(observation)
            transcript.act_action(action)
            observation, _, done, _ = env.step(action)
            if done:
                break
        texts.append(transcript.text)
    return texts
