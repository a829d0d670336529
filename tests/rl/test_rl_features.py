"""The spec-derived featurizer: named, stable, and blind to facts that no tool has revealed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.rl import Featurizer, collect_observations
from workflows.engine import Action


def test_feature_names_are_unique_and_in_the_workflows_words(featurizer):
    names = featurizer.names
    assert len(names) == len(set(names)) == featurizer.size
    for expected in (
        "amount_claimed",
        "claim_type=theft",
        "police_report",
        "days(incident_date→report_date)",
        "called(fraud_score)",
        "fraud_score.score",
        "fraud_score.signals∋no_photos",
        "check_coverage.in_force",
        "check_coverage.limit",
        "compute_payout.payout",
        "lookup_policy.status=active",
        "days(incident_date→check_coverage.expiry_date)",
        "lookup_policy.holder = claimant",
        "step_index",
    ):
        assert expected in names, expected
    assert not any(name.startswith(("description", "claimant", "policy_number")) for name in names)


def test_refitting_on_the_same_observations_gives_the_same_schema(world, env):
    observations = collect_observations(env, world.train_cases[:100])
    again = Featurizer.fit(world.spec, observations)
    assert again.names == world.featurizer.names
    assert again.to_dict() == world.featurizer.to_dict()


def test_schema_round_trips_through_json_and_featurizes_identically(world, env, featurizer):
    restored = Featurizer.from_dict(world.spec, json.loads(json.dumps(featurizer.to_dict())))
    assert restored.names == featurizer.names
    for observation in collect_observations(env, world.test_cases[:10]):
        np.testing.assert_array_equal(restored.transform(observation), featurizer.transform(observation))


def test_schema_fitted_on_another_spec_is_refused(world, featurizer):
    other = world.spec.to_dict()
    other["max_steps"] = 13
    from workflows.engine import WorkflowSpec

    with pytest.raises(ValueError, match="spec"):
        Featurizer.from_dict(WorkflowSpec.from_dict(other), featurizer.to_dict())


def _block(featurizer, row, tool):
    segment = next(s for s in featurizer.segments if s.tool == tool)
    return row[segment.start : segment.stop]


def test_hidden_facts_are_zero_until_their_tool_reveals_them(world, env, featurizer):
    case = world.test_cases[0]
    observation = env.reset(case)
    first = featurizer.transform(observation)
    for tool in world.spec.tool_names:
        assert not _block(featurizer, first, tool).any(), f"{tool} facts visible before the call"
    observation, _, _, _ = env.step(Action.tool("lookup_policy"))
    observation, _, _, _ = env.step(Action.tool("check_coverage"))
    after = featurizer.transform(observation)
    assert after[featurizer.names.index("called(check_coverage)")] == 1.0
    assert _block(featurizer, after, "check_coverage").any()
    assert not _block(featurizer, after, "fraud_score").any()
    # The case block did not change: revealing never rewrites what the case said.
    case_part = slice(0, featurizer.case_size)
    np.testing.assert_array_equal(first[case_part], after[case_part])


def test_date_differences_are_days_between_the_fields_in_months(world, env, featurizer):
    case = next(c for c in world.test_cases if c.fields["incident_date"] != c.fields["report_date"])
    from datetime import date

    days = (
        date.fromisoformat(case.fields["report_date"]) - date.fromisoformat(case.fields["incident_date"])
    ).days
    row = featurizer.transform(env.reset(case))
    assert row[featurizer.names.index("days(incident_date→report_date)")] == pytest.approx(
        days / 30, abs=1e-6
    )
    assert row[featurizer.names.index("days(incident_date→report_date) < 0")] == (1.0 if days < 0 else 0.0)


def test_incremental_encoder_matches_featurizing_from_scratch(world, env, featurizer):
    encoder = featurizer.encoder()
    for observation in collect_observations(env, world.test_cases[:20]):
        np.testing.assert_array_equal(encoder.encode(observation), featurizer.transform(observation))


def test_features_are_finite_and_bounded(world, env, featurizer):
    rows = np.stack([featurizer.transform(o) for o in collect_observations(env, world.test_cases)])
    assert np.isfinite(rows).all()
    assert np.abs(rows).max() <= 24.0


def test_piecewise_linear_bins_place_a_value_between_their_edges(featurizer):
    from training.rl.features import _bin_values

    edges = [0.0, 10.0, 20.0, 40.0]
    assert _bin_values(-1.0, edges) == [0.0, 0.0, 0.0]
    assert _bin_values(5.0, edges) == [0.5, 0.0, 0.0]
    assert _bin_values(10.0, edges) == [1.0, 0.0, 0.0]
    assert _bin_values(30.0, edges) == [1.0, 1.0, 0.5]
    assert _bin_values(99.0, edges) == [1.0, 1.0, 1.0]
    assert _bin_values(None, edges) == [0.0, 0.0, 0.0]
    binned = [name for name in featurizer.names if name.startswith("compute_payout.payout in [")]
    assert len(binned) >= 3
    assert any(name.startswith("days(incident_date→report_date) in [") for name in featurizer.names)
