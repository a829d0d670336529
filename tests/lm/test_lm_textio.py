"""The text interface: observations as text, the action grammar, and parse errors as penalised steps.

Pure Python: these run without transformers or vLLM."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.rl.lm.config import GRPOConfig, LMModelConfig, LMTrainConfig, SFTConfig
from training.rl.lm.textio import PARSE_ERROR, Transcript, format_action, parse_action, render_case
from workflows.engine import Action, run_episode
from workflows.packs import get_pack


@pytest.fixture(scope="module")
def claims():
    pack = get_pack("claims")
    spec = pack.spec()
    tables = pack.generate_tables(7, policy_count=50)
    cases = pack.generate_cases(4, seed=1, difficulty=1, tables=tables)
    return pack, spec, tables, cases


def test_the_case_renders_as_lines_with_the_workflows_names(claims):
    _, spec, _, cases = claims
    text = render_case(spec, cases[0].fields)
    lines = text.splitlines()
    assert lines[0] == "CASE claims"
    assert lines[1] == "TOOLS lookup_policy check_coverage claim_history fraud_score compute_payout"
    assert lines[2] == "DECISIONS approve(amount) deny(reason_code) escalate(reason)"
    assert f"policy_number: {cases[0].fields['policy_number']}" in lines
    assert f"amount_claimed: {cases[0].fields['amount_claimed']}" in lines
    assert text.endswith("\n")


def test_long_text_fields_are_flattened_and_cut(claims):
    _, spec, _, cases = claims
    fields = dict(cases[0].fields, description="line one\n\nline two " + "x" * 1000)
    line = next(ln for ln in render_case(spec, fields).splitlines() if ln.startswith("description:"))
    assert "\n" not in line and line.startswith("description: line one line two")
    assert len(line) == len("description: ") + 300 and line.endswith("…")


@pytest.mark.parametrize(
    ("line", "kind", "name", "arguments", "explanation"),
    [
        ("CALL lookup_policy {}", "tool", "lookup_policy", {}, ""),
        ("CALL lookup_policy", "tool", "lookup_policy", {}, ""),
        ("  CALL   lookup_policy   {}  ", "tool", "lookup_policy", {}, ""),
        ('CALL risk{"level": 2}', "tool", "risk", {"level": 2}, ""),
        (
            'DECIDE approve {"amount": 1899.32} BECAUSE payout 1,899.32',
            "decision",
            "approve",
            {"amount": 1899.32},
            "payout 1,899.32",
        ),
        (
            'DECIDE  deny  { "reason_code" : "late_report" }   BECAUSE   reported late  ',
            "decision",
            "deny",
            {"reason_code": "late_report"},
            "reported late",
        ),
        (
            'DECIDE approve {"amount": 5} BECAUSE ok\nCALL ignored {}',
            "decision",
            "approve",
            {"amount": 5},
            "ok",
        ),
    ],
)
def test_valid_lines_parse_with_whitespace_tolerated(line, kind, name, arguments, explanation):
    parsed = parse_action(line)
    assert parsed.ok, parsed.error
    assert (parsed.action.kind, parsed.action.name, parsed.action.arguments) == (kind, name, arguments)
    assert parsed.action.explanation == explanation


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("call lookup_policy {}", "expected CALL or DECIDE"),
        ("LOOKUP lookup_policy", "expected CALL or DECIDE"),
        ("CALL {}", "must be followed by a name"),
        ("CALL lookup-policy {}", "unexpected"),
        ("CALL lookup_policy {", "not valid JSON"),
        ("CALL lookup_policy [1, 2]", "unexpected text"),
        ('CALL lookup_policy {} {"x": 1}', "unexpected text"),
        ("DECIDE approve BECAUSE fine", "needs a JSON object"),
        ('DECIDE approve {"amount": 12.3.4} BECAUSE x', "not valid JSON"),
        ('DECIDE approve ["amount"] BECAUSE x', "needs a JSON object"),
        ('DECIDE approve {"amount": 1}', "BECAUSE"),
        ('DECIDE approve {"amount": 1} because fine', "BECAUSE"),
        ('DECIDE approve {"amount": 1} BECAUSE   ', "explanation after BECAUSE is empty"),
    ],
)
def test_structural_mistakes_become_parse_error_actions(line, reason):
    parsed = parse_action(line)
    assert not parsed.ok and reason in parsed.error
    assert parsed.action.kind == PARSE_ERROR and parsed.action.name == PARSE_ERROR
    assert parsed.action.arguments == {"text": line.strip()}
    assert parsed.action.explanation == f"could not parse the action: {parsed.error}"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parsing_never_raises(text):
    parsed = parse_action(text)
    assert parsed.ok or parsed.action.kind == PARSE_ERROR


def test_formatted_actions_parse_back_to_themselves():
    for action in (
        Action.tool("lookup_policy"),
        Action.decide("approve", {"amount": 1899.32}, "payout 1,899.32 = min(2,149.32, 10,000.00) - 250.00"),
        Action.decide("deny", {"reason_code": "late_report"}, "Reported\n41 days   late."),
    ):
        line = format_action(action)
        assert line.endswith("\n") and line.count("\n") == 1
        parsed = parse_action(line)
        assert parsed.ok and parsed.action.name == action.name and parsed.action.arguments == action.arguments
    assert parse_action(
        format_action(Action.decide("deny", {}, "Reported\n41 days late."))
    ).action.explanation == ("Reported 41 days late.")


def test_a_parse_error_is_a_penalised_recorded_step_and_the_next_line_says_why(claims):
    pack, spec, tables, cases = claims
    env = pack.environment(tables, rubric=pack.rubric(spec))
    transcript = Transcript(spec)
    observation = env.reset(cases[0])
    transcript.observe(observation)
    parsed = transcript.act("CALL lookup_policy {")
    observation, reward, done, info = env.step(parsed.action)
    assert not done and info["error"]
    step = env.trajectory.steps[0]
    assert step.action.kind == PARSE_ERROR and step.error
    rubric = pack.rubric(spec)
    assert reward == pytest.approx(-rubric.step_cost - env.invalid_action_penalty)
    text = transcript.observe(observation)
    assert text.startswith("ERROR could not parse the action: the arguments are not valid JSON")
    # A valid but unknown tool is the environment's refusal, not a parse error.
    parsed = transcript.act("CALL no_such_tool {}")
    assert parsed.ok
    observation, _, _, info = env.step(parsed.action)
    assert "unknown tool" in info["error"]
    assert transcript.observe(observation) == "ERROR unknown tool 'no_such_tool'\n"


def test_the_reference_solver_transcript_reads_as_documented(claims):
    pack, spec, tables, cases = claims
    env = pack.environment(tables, rubric=pack.rubric(spec))
    solver = pack.solver(spec)
    transcript = Transcript(spec)
    trajectory = run_episode(env, _Recording(solver, transcript), cases[0])
    lines = transcript.text.splitlines()
    agent_lines = [text.rstrip("\n") for text, agent in transcript.segments if agent]
    assert all(line.startswith(("CALL ", "DECIDE ")) for line in agent_lines)
    assert agent_lines[-1].startswith(f"DECIDE {trajectory.decision.name} ")
    assert lines[lines.index("CALL lookup_policy {}") + 1].startswith('RESULT lookup_policy {"found": true')
    for line in agent_lines:
        parsed = parse_action(line)
        assert parsed.ok


class _Recording:
    """Plays a policy while writing its actions into a transcript, as a model would."""

    def __init__(self, policy, transcript):
        self.policy, self.transcript = policy, transcript

    def reset(self, seed=None):
        self.policy.reset(seed)

    def act(self, observation):
        self.transcript.observe(observation)
        action = self.policy.act(observation)
        self.transcript.act_action(action)
        return action


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: GRPOConfig(group_size=1), "grpo.group_size"),
        (lambda: GRPOConfig(clip_low=1.5), "grpo.clip_low"),
        (lambda: GRPOConfig(engine="jax"), "grpo.engine"),
        (lambda: GRPOConfig(kl_coef=-1), "grpo.kl_coef"),
        (lambda: SFTConfig(learning_rate=0), "sft.learning_rate"),
        (lambda: LMModelConfig(hidden_size=96, head_size=64), "model.hidden_size"),
        (lambda: LMTrainConfig.from_dict({"grpo": {"group_sise": 4}}), "grpo.group_sise"),
        (lambda: LMTrainConfig.from_dict({"sft": {"steps": 0}, "grpo": {"steps": 0}}), "sft.steps"),
    ],
)
def test_invalid_configs_name_the_field(build, field):
    with pytest.raises(ValueError) as exc:
        build()
    assert str(exc.value).startswith(field)


def test_configs_round_trip_through_json():
    config = LMTrainConfig.from_dict({"seed": 3, "grpo": {"group_size": 6}, "model": {"layers": 3}})
    assert LMTrainConfig.from_dict(config.to_dict()) == config
    assert config.total_steps == config.sft.steps + config.grpo.steps
    assert set(GRPOConfig.help()) == {f for f in GRPOConfig.__dataclass_fields__}
    assert all(GRPOConfig.help().values())
