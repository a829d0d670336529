"""evaluate_policy: the reference solver scores top marks, reward hackers trigger gates."""

from __future__ import annotations

import pytest

from training.rl import evaluate_policy, gap_closed
from workflows.engine import EXPLOIT_POLICIES


def test_reference_solver_is_right_on_every_labelled_case(world, pack):
    report = evaluate_policy(pack.solver(world.spec), world.env_factory, world.test_cases)
    assert report["episodes"] == len(world.test_cases)
    assert report["score/mean"] == pytest.approx(1.0)
    assert report["outcome/accuracy"] == 1.0 and report["outcome/exact"] == 1.0
    assert report["gates/triggered"] == 0
    assert report["amount/mae"] == pytest.approx(0.0) and report["amount/count"] > 0
    assert all(value == 1.0 for key, value in report.items() if key.startswith("pass_rate/"))
    confusion = report["confusion"]
    assert sum(sum(row.values()) for row in confusion.values()) == len(world.test_cases)
    assert all(set(row) == {expected} for expected, row in confusion.items())


def test_always_approve_triggers_gates_and_a_confused_matrix(world):
    report = evaluate_policy(
        EXPLOIT_POLICIES["always_approve"](world.spec), world.env_factory, world.test_cases
    )
    assert report["gates/triggered"] == len(world.test_cases)
    assert report["score/mean"] == 0.0
    assert set(report["confusion"]["deny"]) == {"approve"}
    assert report["gates/by_criterion"]["no_payment_without_cover"] > 0


def test_gap_closed_measures_the_share_of_the_way_to_the_reference():
    assert gap_closed(0.9, baseline=0.8, reference=1.0) == pytest.approx(0.5)
    assert gap_closed(1.0, baseline=0.8, reference=1.0) == pytest.approx(1.0)
    assert gap_closed(0.7, baseline=0.8, reference=1.0) < 0
