"""The structured explanation a reviewer reads: the text, the facts it used (cited), the rule that
fired or the rubric criteria about the decision, the confidence and the alternatives."""

from __future__ import annotations

import pytest

from tests.factories import approve_rules, make_rules_version
from workflows.models import Case, Split

pytestmark = pytest.mark.django_db


def test_a_rules_decision_explains_itself_with_facts_rule_criteria_and_alternatives(claims):
    decision = claims.decide()  # the expert rules approve the first live claim
    explanation = decision.explanation
    assert decision.name == "approve"
    assert explanation["text"].startswith("Policy ")
    assert set(explanation["facts"]) == {
        "lookup_policy",
        "check_coverage",
        "claim_history",
        "fraud_score",
        "compute_payout",
    }
    payout = explanation["facts"]["compute_payout"]["payout"]
    assert {"tool": "compute_payout", "key": "payout", "value": payout} in explanation["cited"]
    assert all(explanation["facts"][c["tool"]][c["key"]] == c["value"] for c in explanation["cited"])
    assert explanation["rule"] == {"rule": "default", "when": None}
    names = {criterion["name"] for criterion in explanation["criteria"]}
    assert {
        "right_outcome",
        "payout_within_tolerance",
        "approval_within_limit",
        "fraud_checked_before_payment",
    } <= names
    assert "right_deny_reason" not in names and "looked_up_policy" not in names
    assert explanation["confidence"] == decision.confidence == 0.85
    assert explanation["alternatives"][0] == {"decision": "approve", "probability": 0.85, "chosen": True}
    assert {a["decision"] for a in explanation["alternatives"]} == {"approve", "deny", "escalate"}
    assert explanation["features"] == []


def test_the_rule_named_is_the_one_that_fired(claims):
    # The second live claim of seed 99 is denied because the peril is not covered: rules[3].
    decision = claims.decide(index=1)
    assert decision.name == "deny"
    assert decision.explanation["rule"] == {"rule": "rules[3]", "when": "not check_coverage.peril_covered"}
    names = {criterion["name"] for criterion in decision.explanation["criteria"]}
    assert "right_deny_reason" in names and "payout_within_tolerance" not in names


def test_a_policy_that_names_no_rule_has_none(claims):
    from workflows.engine.policies import AlwaysDenyPolicy
    from workflows.engine.spec import WorkflowSpec
    from workflows.services import run_policy

    version = make_rules_version(claims.admin, claims.workflow, config=approve_rules())
    case = claims.decide().case
    spec = WorkflowSpec.from_dict(case.workflow_version.spec)
    run = run_policy(policy_version=version, case=case, policy=AlwaysDenyPolicy(spec))
    assert run.decision.explanation["rule"] is None
    assert Case.objects.filter(split=Split.LIVE).count() == 1
