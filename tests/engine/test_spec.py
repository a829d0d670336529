"""Workflow specs: building them, and every validation error pointing at its path."""

from __future__ import annotations

import copy

import pytest

from tests.engine.engine_toys import toy_spec, toy_spec_dict
from workflows.engine import CaseValidationError, Problem, SpecError, WorkflowSpec


def test_spec_round_trips_through_its_dict_form() -> None:
    spec = toy_spec()
    again = WorkflowSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.to_dict() == spec.to_dict()


def test_action_names_list_tools_then_decisions_in_spec_order() -> None:
    spec = toy_spec()
    assert spec.tool_names == ("lookup_order", "refundable", "risk")
    assert spec.decision_names == ("approve", "deny")
    assert spec.action_names == ("lookup_order", "refundable", "risk", "approve", "deny")
    assert spec.tool("risk").kind == "pack"
    assert spec.decision("deny").arguments[0].choices == ("not_refundable", "unknown")
    with pytest.raises(KeyError):
        spec.tool("approve")


def test_spec_errors_list_every_problem_with_its_path() -> None:
    broken = toy_spec_dict()
    broken["max_steps"] = 0
    broken["colour"] = "blue"
    broken["case_fields"][1]["minimum"] = 50_000  # above its maximum
    broken["case_fields"][2]["choices"] = []
    broken["case_fields"][3]["type"] = "flag"
    broken["case_fields"][4]["minimum"] = 3  # dates have no minimum
    broken["case_fields"].append({"name": "order_id", "type": "string"})
    broken["tools"][0]["key_field"] = "order_number"
    broken["tools"][1]["expression"] = "lookup_order.status == 'x' and __import__('os')"
    broken["tools"][2]["requires"] = ["lookup_order", "oracle"]
    broken["tools"].append({"name": "approve", "kind": "crystal_ball"})
    broken["decisions"][0]["arguments"][0]["type"] = "money"
    with pytest.raises(SpecError) as raised:
        WorkflowSpec.from_dict(broken)
    paths = set(raised.value.paths())
    assert {
        "max_steps",
        "colour",
        "case_fields[1].minimum",
        "case_fields[2].choices",
        "case_fields[3].type",
        "case_fields[4].minimum",
        "case_fields[7].name",
        "tools[0].key_field",
        "tools[1].expression",
        "tools[2].requires[1]",
        "tools[3].name",
        "tools[3].kind",
        "decisions[0].arguments[0].type",
    } <= paths
    message = str(raised.value)
    assert "tools[1].expression: calling '__import__' is not allowed" in message
    assert "case_fields[7].name: duplicate name 'order_id'" in message
    assert "tools[3].name: 'approve' is already used by a decision" in message


def test_circular_requirements_are_reported() -> None:
    spec = toy_spec_dict()
    spec["tools"][0]["requires"] = ["risk"]  # lookup_order -> risk -> lookup_order
    with pytest.raises(SpecError, match="circular requirement: lookup_order -> risk -> lookup_order"):
        WorkflowSpec.from_dict(spec)


def test_an_expression_tool_must_require_the_tools_it_reads() -> None:
    spec = toy_spec_dict()
    spec["tools"][1]["requires"] = []
    with pytest.raises(SpecError) as raised:
        WorkflowSpec.from_dict(spec)
    assert raised.value.problems == [
        Problem(
            "tools[1].expression",
            "reads 'lookup_order', which is not in requires (it may not be revealed yet)",
        )
    ]


def test_spec_must_be_a_dict_with_fields_and_decisions() -> None:
    with pytest.raises(SpecError) as raised:
        WorkflowSpec.from_dict({"name": "x"})
    assert set(raised.value.paths()) == {"case_fields", "decisions"}
    with pytest.raises(SpecError):
        WorkflowSpec.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


def _valid_fields() -> dict[str, object]:
    return {
        "order_id": "A-1",
        "amount": "1,250.50",
        "reason": "late",
        "urgent": "yes",
        "ordered_on": "2024-02-29",
        "items": "3",
    }


def test_validate_case_coerces_form_strings_to_typed_values() -> None:
    fields = toy_spec().validate_case(_valid_fields())
    assert fields == {
        "order_id": "A-1",
        "amount": 1250.5,
        "reason": "late",
        "urgent": True,
        "ordered_on": "2024-02-29",
        "items": 3,
        "note": None,
    }


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"order_id": None}, "fields.order_id", "is required"),
        ({"amount": "lots"}, "fields.amount", "must be a number"),
        ({"amount": True}, "fields.amount", "must be a number"),
        ({"amount": float("nan")}, "fields.amount", "finite"),
        ({"amount": -1}, "fields.amount", "must be at least 0"),
        ({"amount": 10_000.01}, "fields.amount", "must be at most 10000"),
        ({"items": 2.5}, "fields.items", "must be an integer"),
        ({"items": 0}, "fields.items", "must be at least 1"),
        ({"reason": "bored"}, "fields.reason", "must be one of damaged, late, changed_mind"),
        ({"urgent": "maybe"}, "fields.urgent", "must be a boolean"),
        ({"ordered_on": "2024-02-30"}, "fields.ordered_on", "is not a valid date"),
        ({"ordered_on": "20240201"}, "fields.ordered_on", "must be a date (yyyy-mm-dd)"),
        ({"note": 5}, "fields.note", "must be a string"),
        ({"colour": "red"}, "fields.colour", "unknown field"),
    ],
)
def test_validate_case_names_the_bad_field(changes: dict[str, object], path: str, message: str) -> None:
    fields = _valid_fields() | changes
    with pytest.raises(CaseValidationError) as raised:
        toy_spec().validate_case(fields)
    assert [problem.path for problem in raised.value.problems] == [path]
    assert message in raised.value.problems[0].message


def test_validate_case_lists_all_problems_at_once() -> None:
    with pytest.raises(CaseValidationError) as raised:
        toy_spec().validate_case({"amount": -5, "colour": "red"})
    assert set(raised.value.paths()) == {
        "fields.order_id",
        "fields.amount",
        "fields.reason",
        "fields.urgent",
        "fields.ordered_on",
        "fields.items",
        "fields.colour",
    }


def test_validate_decision_checks_arguments_by_path() -> None:
    spec = toy_spec()
    assert spec.validate_decision("approve", {"amount": "12.5"}) == {"amount": 12.5}
    with pytest.raises(CaseValidationError) as raised:
        spec.validate_decision("deny", {"reason_code": "whim", "extra": 1})
    assert raised.value.paths() == ["arguments.reason_code", "arguments.extra"]
    with pytest.raises(CaseValidationError) as unknown:
        spec.validate_decision("refund", {})
    assert unknown.value.paths() == ["decision"]


def test_from_dict_does_not_modify_its_input() -> None:
    data = toy_spec_dict()
    snapshot = copy.deepcopy(data)
    WorkflowSpec.from_dict(data)
    assert data == snapshot
