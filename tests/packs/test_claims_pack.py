"""The claims pack: registry, reference data, generator, hidden rules, pack tools, policies' scores."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import date
from typing import Any

import pytest

from workflows.engine import (
    EXPLOIT_POLICIES,
    Action,
    CaseData,
    Environment,
    Outcome,
    Policy,
    Rubric,
    RulesPolicy,
    WorkflowSpec,
    rubric_redteam,
    run_episode,
)
from workflows.packs import Pack, get_pack, pack_names
from workflows.packs.claims.generator import scenario_of
from workflows.packs.claims.tools import coverage_facts, days_between, find_policy, fraud_facts, payout_for

PACK = get_pack("claims")
SPEC = PACK.spec()
TABLES = PACK.generate_tables(42)


@pytest.fixture(scope="module")
def env() -> Environment:
    return PACK.environment(TABLES, spec=SPEC)


@pytest.fixture(scope="module")
def cases_by_difficulty() -> dict[int, list[CaseData]]:
    return {level: PACK.generate_cases(200, seed=7, difficulty=level, tables=TABLES) for level in range(4)}


def correct(decision: Any, expected: Outcome | None) -> bool:
    assert expected is not None
    return (
        decision is not None
        and decision.name == expected.decision
        and all(decision.arguments.get(key) == value for key, value in expected.arguments.items())
    )


def evaluate(env: Environment, policy: Policy, cases: list[CaseData]) -> tuple[float, float]:
    """(mean rubric score, outcome accuracy) of ``policy`` on ``cases``."""
    scores, hits = [], 0
    for position, case in enumerate(cases):
        trajectory = run_episode(env, policy, case, seed=position)
        assert env.score is not None
        scores.append(env.score.total)
        hits += correct(trajectory.decision, case.expected)
    return statistics.fmean(scores), hits / len(cases)


# --------------------------------------------------------------------------- registry and dicts


def test_the_registry_serves_the_claims_pack() -> None:
    assert pack_names() == ("claims",)
    assert isinstance(PACK, Pack) and PACK.name == "claims"
    with pytest.raises(KeyError, match="unknown pack 'mortgages'; available: claims"):
        get_pack("mortgages")


def test_pack_dicts_are_valid_and_handed_out_as_copies() -> None:
    spec = WorkflowSpec.from_dict(PACK.spec_dict)
    Rubric.from_dict(PACK.default_rubric_dict, spec)
    RulesPolicy.validate(spec, PACK.rules_dict)
    mangled = PACK.spec_dict
    mangled["max_steps"] = 1
    assert PACK.spec_dict["max_steps"] == 12
    assert spec.action_names == (
        "lookup_policy",
        "check_coverage",
        "claim_history",
        "fraud_score",
        "compute_payout",
        "approve",
        "deny",
        "escalate",
    )


# --------------------------------------------------------------------------- reference data and cases


def test_reference_tables_are_deterministic_and_varied() -> None:
    assert PACK.generate_tables(42) == TABLES
    assert PACK.generate_tables(43) != TABLES
    policies = TABLES["policies"]
    assert Counter(row["status"] for row in policies).keys() == {"active", "lapsed", "cancelled"}
    assert any(row["limit"] is None for row in policies) and any(row["limit"] for row in policies)
    assert any(row["coverage_limits"] for row in policies)
    assert {row["outcome"] for row in TABLES["claim_history"]} <= {"paid", "denied", "withdrawn"}
    for row in policies:
        assert date.fromisoformat(row["effective_date"]) < date.fromisoformat(row["expiry_date"])
        assert row["deductible"] > 0 and "liability" in row["coverages"].split(";")


def test_the_generator_is_deterministic_under_a_seed() -> None:
    first = PACK.generate_cases(60, seed=3, difficulty=2, tables=TABLES)
    again = PACK.generate_cases(60, seed=3, difficulty=2, tables=TABLES)
    other = PACK.generate_cases(60, seed=4, difficulty=2, tables=TABLES)
    assert [case.to_dict() for case in first] == [case.to_dict() for case in again]
    assert [case.fields for case in first] != [case.fields for case in other]
    with pytest.raises(ValueError, match="difficulty"):
        PACK.generate_cases(1, seed=0, difficulty=4, tables=TABLES)


def test_generated_cases_are_valid_and_labelled_by_the_hidden_rules(
    cases_by_difficulty: dict[int, list[CaseData]],
) -> None:
    for level, cases in cases_by_difficulty.items():
        for case in cases:
            assert case.difficulty == level
            assert SPEC.validate_case(case.fields) == case.fields
            assert case.expected == PACK.adjudicate(case.fields, TABLES)
        outcomes = Counter(scenario_of(case) for case in cases)
        assert outcomes["approve"] >= 40, outcomes
        assert len(outcomes) >= 7, outcomes  # every outcome class shows up


def test_higher_difficulty_puts_cases_exactly_on_the_rule_boundaries(
    cases_by_difficulty: dict[int, list[CaseData]],
) -> None:
    def edges(cases: list[CaseData]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for case in cases:
            fields = case.fields
            delay = days_between(fields["incident_date"], fields["report_date"])
            counts["reported on day 30"] += delay == 30
            counts["reported on day 31"] += delay == 31
            counts["fraud score exactly 0.70"] += fraud_facts(fields, TABLES)["score"] == 0.7
            policy = find_policy(TABLES, fields["policy_number"])
            if policy is None:
                continue
            counts["incident on the expiry date"] += fields["incident_date"] == policy.expiry.isoformat()
            counts["amount equal to the deductible"] += fields["amount_claimed"] == policy.deductible
            coverage = coverage_facts(fields, policy)
            payout = payout_for(fields["amount_claimed"], coverage["limit"], coverage["deductible"])
            counts["payout exactly 25,000.00"] += payout == 25_000.0
        return counts

    hardest, easiest = edges(cases_by_difficulty[3]), edges(cases_by_difficulty[0])
    for edge in (
        "reported on day 30",
        "reported on day 31",
        "fraud score exactly 0.70",
        "incident on the expiry date",
        "amount equal to the deductible",
        "payout exactly 25,000.00",
    ):
        assert hardest[edge] > easiest[edge], (edge, hardest, easiest)


# --------------------------------------------------------------------------- the hidden rules


def one_policy_tables(**policy: Any) -> dict[str, list[dict[str, Any]]]:
    row = {
        "policy_number": "AUT-1",
        "holder": "Ada Keller",
        "status": "active",
        "effective_date": "2024-01-01",
        "expiry_date": "2024-12-31",
        "coverages": "liability;collision;theft;glass",
        "limit": None,
        "coverage_limits": "collision:30000;theft:20000;glass:1500",
        "deductible": 500.0,
    }
    row.update(policy)
    history = [
        {"policy_number": "AUT-1", "date": day, "claim_type": "collision", "amount": 900.0, "outcome": "paid"}
        for day in ("2024-02-01", "2024-03-01", "2024-04-01")
    ]
    return {"policies": [row], "claim_history": history}


def claim(**fields: Any) -> dict[str, Any]:
    base = {
        "claim_type": "collision",
        "amount_claimed": 4_500.0,
        "incident_date": "2024-06-10",
        "report_date": "2024-06-12",
        "policy_number": "AUT-1",
        "police_report": True,
        "photos": 4,
        "description": "Rear-ended at a light.",
        "claimant": "Ada Keller",
    }
    return base | fields


@pytest.mark.parametrize(
    ("fields", "policy", "expected"),
    [
        ({}, {}, Outcome("approve", {"amount": 4_000.0})),
        ({"policy_number": "AUT-404"}, {}, Outcome("deny", {"reason_code": "policy_inactive"})),
        ({}, {"status": "lapsed"}, Outcome("deny", {"reason_code": "policy_inactive"})),
        ({}, {"status": "cancelled"}, Outcome("deny", {"reason_code": "policy_inactive"})),
        (
            {"incident_date": "2024-12-31", "report_date": "2025-01-02"},
            {},
            Outcome("approve", {"amount": 4_000.0}),
        ),  # incident on the expiry date is covered
        (
            {"incident_date": "2025-01-01", "report_date": "2025-01-02"},
            {},
            Outcome("deny", {"reason_code": "policy_inactive"}),
        ),  # the day after is not
        ({"claim_type": "fire"}, {}, Outcome("deny", {"reason_code": "not_covered"})),
        ({"report_date": "2024-06-09"}, {}, Outcome("escalate", {"reason": "needs_investigation"})),
        ({"report_date": "2024-07-10"}, {}, Outcome("approve", {"amount": 4_000.0})),  # day 30
        ({"report_date": "2024-07-11"}, {}, Outcome("deny", {"reason_code": "late_report"})),  # day 31
        (
            {"claim_type": "theft", "police_report": False, "photos": 0},
            {},
            Outcome("escalate", {"reason": "fraud_suspected"}),
        ),  # 3 prior claims (0.35) + theft without police report (0.35) = exactly 0.70
        ({"amount_claimed": 25_500.0}, {}, Outcome("approve", {"amount": 25_000.0})),
        ({"amount_claimed": 25_500.01}, {}, Outcome("escalate", {"reason": "high_value"})),
        ({"amount_claimed": 500.0}, {}, Outcome("deny", {"reason_code": "below_deductible"})),
        ({"amount_claimed": 500.01}, {}, Outcome("approve", {"amount": 0.01})),
        (
            {"amount_claimed": 40_000.0},
            {"limit": 10_000.0, "coverage_limits": ""},
            Outcome("approve", {"amount": 9_500.0}),
        ),
    ],
)
def test_hidden_adjudication_rules(fields: dict[str, Any], policy: dict[str, Any], expected: Outcome) -> None:
    assert PACK.adjudicate(claim(**fields), one_policy_tables(**policy)) == expected


def test_fraud_score_adds_up_its_signals() -> None:
    tables = one_policy_tables(effective_date="2024-06-01")
    facts = fraud_facts(
        claim(
            claim_type="theft",
            police_report=False,
            report_date="2024-06-28",
            amount_claimed=19_000.0,
            claimant="Someone Else",
        ),
        tables,
    )
    assert facts["signals"] == [
        "frequent_claims",
        "theft_without_police_report",
        "slow_reporting",
        "amount_near_limit",
        "new_policy",
        "claimant_not_holder",
    ]
    assert facts["score"] == 1.0  # capped
    clean = fraud_facts(claim(incident_date="2025-06-10"), one_policy_tables(expiry_date="2025-12-31"))
    assert clean == {"score": 0.0, "signals": []}


def test_the_tools_reveal_the_facts_the_rules_use() -> None:
    env = PACK.environment(one_policy_tables(), spec=SPEC)
    env.reset(CaseData("t", claim(claim_type="theft", police_report=False), None))
    for tool in SPEC.tool_names:
        _, _, _, info = env.step(Action.tool(tool))
        assert info["error"] is None
    revealed = env.trajectory.revealed()
    assert revealed["lookup_policy"] == {
        "found": True,
        "holder": "Ada Keller",
        "status": "active",
        "effective_date": "2024-01-01",
        "expiry_date": "2024-12-31",
        "coverages": "liability;collision;theft;glass",
    }
    assert revealed["check_coverage"] == {
        "policy_status": "active",
        "peril": "theft",
        "in_force": True,
        "peril_covered": True,
        "limit": 20_000.0,
        "deductible": 500.0,
        "limit_basis": "per_coverage",
        "effective_date": "2024-01-01",
        "expiry_date": "2024-12-31",
    }
    assert revealed["claim_history"] == {
        "prior_claims_12m": 3,
        "prior_amount_12m": 2_700.0,
        "prior_denied_12m": 0,
        "last_claim_date": "2024-04-01",
    }
    assert revealed["fraud_score"] == {
        "score": 0.7,
        "signals": ["frequent_claims", "theft_without_police_report"],
    }
    assert revealed["compute_payout"] == {"payout": 4_000.0}


# --------------------------------------------------------------------------- policies under the rubric


def test_the_reference_solver_scores_near_the_top(env: Environment, cases_by_difficulty: dict) -> None:
    cases = [case for level in range(4) for case in cases_by_difficulty[level][:50]]
    assert len(cases) == 200
    score, accuracy = evaluate(env, PACK.solver(SPEC), cases)
    assert accuracy == 1.0
    assert score >= 0.95


def test_every_exploit_policy_scores_far_below_the_solver(
    env: Environment, cases_by_difficulty: dict
) -> None:
    cases = [case for level in range(4) for case in cases_by_difficulty[level][:50]]
    solver_score, _ = evaluate(env, PACK.solver(SPEC), cases)
    for name, factory in EXPLOIT_POLICIES.items():
        score, _ = evaluate(env, factory(SPEC), cases)
        assert score < 0.5, (name, score)
        assert score <= solver_score - 0.4, (name, score, solver_score)


def test_rules_policy_accuracy_lies_strictly_between_exploits_and_solver(
    env: Environment, cases_by_difficulty: dict
) -> None:
    cases = [case for level in range(3) for case in cases_by_difficulty[level]]
    rules_score, rules_accuracy = evaluate(env, PACK.rules_policy(SPEC), cases)
    solver_score, solver_accuracy = evaluate(env, PACK.solver(SPEC), cases)
    exploit_results = [evaluate(env, factory(SPEC), cases) for factory in EXPLOIT_POLICIES.values()]
    best_exploit_accuracy = max(accuracy for _, accuracy in exploit_results)
    best_exploit_score = max(score for score, _ in exploit_results)
    assert best_exploit_accuracy < rules_accuracy < solver_accuracy
    assert best_exploit_score < rules_score < solver_score
    assert 0.75 <= rules_accuracy <= 0.92, rules_accuracy  # room for RL to beat the expert


def test_rules_policy_misses_are_its_planted_imperfections(
    env: Environment, cases_by_difficulty: dict
) -> None:
    rules = PACK.rules_policy(SPEC)
    missed: Counter[str] = Counter()
    for case in cases_by_difficulty[3]:
        trajectory = run_episode(env, rules, case)
        if not correct(trajectory.decision, case.expected):
            missed[scenario_of(case)] += 1
    assert set(missed) <= {"late_report", "fraud_suspected", "high_value", "needs_investigation"}, missed
    assert missed["high_value"] and missed["fraud_suspected"] and missed["late_report"]


def test_gates_zero_blind_or_excessive_payments(env: Environment, cases_by_difficulty: dict) -> None:
    case = next(
        case for case in cases_by_difficulty[0] if case.expected and case.expected.decision == "approve"
    )
    amount = case.expected.arguments["amount"]
    env.reset(case)
    env.step(Action.decide("approve", {"amount": amount}, "Paying."))
    assert env.score is not None and env.score.gated and env.score.total == 0.0
    assert not env.score.criterion("no_approval_without_policy").passed

    env.reset(case)
    for tool in ("lookup_policy", "check_coverage"):
        env.step(Action.tool(tool))
    limit = env.observation.revealed["check_coverage"]["limit"]
    env.step(Action.decide("approve", {"amount": limit + 1}, "Paying."))
    assert env.score is not None and env.score.gated
    assert env.score.criterion("approval_within_limit").reason.startswith("GATE FAILED")


def test_redteam_of_the_default_rubric_flags_no_exploit(cases_by_difficulty: dict) -> None:
    cases = cases_by_difficulty[1][:100]
    report = rubric_redteam(
        SPEC, PACK.rubric(SPEC), cases, TABLES, pack_tools=PACK.pack_tools, reference_policy=PACK.solver(SPEC)
    )
    assert report.flagged == [], report.scores
    assert report.reference_score is not None and report.reference_score >= 0.95


def test_the_generator_copes_with_a_handful_of_policies() -> None:
    tiny = PACK.generate_tables(5, policy_count=3)
    cases = PACK.generate_cases(30, seed=1, difficulty=1, tables=tiny)
    assert len(cases) == 30
    assert all(case.expected == PACK.adjudicate(case.fields, tiny) for case in cases)
    empty = PACK.generate_cases(5, seed=1, difficulty=0, tables={"policies": [], "claim_history": []})
    assert all(case.expected == Outcome("deny", {"reason_code": "policy_inactive"}) for case in empty)
