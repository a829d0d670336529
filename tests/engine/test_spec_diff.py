"""Readable diffs of specs and rubrics: items matched by name, changes listed key by key."""

from __future__ import annotations

from workflows.engine.diff import Change, Detail, rubric_diff, spec_diff
from workflows.packs import get_pack


def _by_item(changes: list[Change]) -> dict[tuple[str, str], Change]:
    return {(change.section, change.item): change for change in changes}


def test_identical_specs_have_no_changes():
    spec = get_pack("claims").spec_dict
    assert spec_diff(spec, get_pack("claims").spec_dict) == []


def test_fields_tools_and_decisions_added_removed_and_changed():
    old = get_pack("claims").spec_dict
    new = get_pack("claims").spec_dict
    new["max_steps"] = 15
    new["case_fields"].append({"name": "vin", "type": "string", "required": False})
    new["case_fields"][1]["maximum"] = 5_000_000
    new["tools"] = [tool for tool in new["tools"] if tool["name"] != "claim_history"]
    new["tools"][-2]["requires"] = ["check_coverage"]  # fraud_score no longer needs the history
    new["decisions"][1]["arguments"][0]["choices"].append("fraud")
    new["decisions"][0]["arguments"].append({"name": "note", "type": "text", "required": False})

    changes = _by_item(spec_diff(old, new))
    assert set(changes) == {
        ("settings", "max_steps"),
        ("case_fields", "amount_claimed"),
        ("case_fields", "vin"),
        ("tools", "claim_history"),
        ("tools", "fraud_score"),
        ("decisions", "approve"),
        ("decisions", "deny"),
    }
    assert changes["settings", "max_steps"].details == (Detail("max_steps", 12, 15),)
    assert changes["case_fields", "amount_claimed"].details == (Detail("maximum", 10_000_000, 5_000_000),)
    assert changes["case_fields", "vin"].kind == "added"
    assert Detail("type", None, "string") in changes["case_fields", "vin"].details
    assert changes["tools", "claim_history"].kind == "removed"
    assert changes["tools", "fraud_score"].details == (
        Detail("requires", ["check_coverage", "claim_history"], ["check_coverage"]),
    )
    # Nested arguments are named by their own names, not their positions.
    assert Detail("arguments.note.type", None, "text") in changes["decisions", "approve"].details
    (choices,) = changes["decisions", "deny"].details
    assert choices.key == "arguments.reason_code.choices" and choices.new[-1] == "fraud"


def test_a_new_order_is_one_change_and_a_rename_is_a_removal_and_an_addition():
    old = get_pack("claims").spec_dict
    new = get_pack("claims").spec_dict
    new["case_fields"].reverse()
    new["decisions"][2]["name"] = "refer"
    changes = spec_diff(old, new)
    reordered = [c for c in changes if c.kind == "reordered"]
    assert [c.section for c in reordered] == ["case_fields"]
    assert reordered[0].details[0].new[0] == "claimant"
    kinds = {(c.section, c.item): c.kind for c in changes if c.kind != "reordered"}
    assert kinds == {("decisions", "escalate"): "removed", ("decisions", "refer"): "added"}


def test_rubric_diff_covers_step_cost_shaping_and_criteria():
    old = get_pack("claims").default_rubric_dict
    new = get_pack("claims").default_rubric_dict
    new["step_cost"] = 0.01
    new["shaping"]["fraud_score"] = 0.02
    del new["shaping"]["lookup_policy"]
    new["criteria"][0]["weight"] = 5
    new["criteria"][3]["params"]["relative"] = 0.02
    new["criteria"].pop()
    changes = _by_item(rubric_diff(old, new))
    assert changes["settings", "step_cost"].details == (Detail("step_cost", 0.005, 0.01),)
    assert changes["shaping", "fraud_score"].kind == "added"
    assert changes["shaping", "lookup_policy"].kind == "removed"
    assert changes["criteria", "right_outcome"].details == (Detail("weight", 4, 5),)
    assert changes["criteria", "payout_within_tolerance"].details == (Detail("params.relative", 0.01, 0.02),)
    assert changes["criteria", "no_payment_without_cover"].kind == "removed"
    assert all(isinstance(change.to_dict()["details"], list) for change in changes.values())


def test_diffs_tolerate_malformed_stored_data():
    assert spec_diff({}, {"case_fields": "oops", "tools": [1, {"no": "name"}]}) == []
    assert (
        rubric_diff({"criteria": None}, {"criteria": [{"name": "a", "kind": "outcome_match"}]})[0].kind
        == "added"
    )
