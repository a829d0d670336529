"""The action mask: nothing it forbids is ever sampled, and what it allows the engine accepts."""

from __future__ import annotations

import numpy as np
import torch

from training.rl import ActionLayout
from training.rl.nets import ActorCritic, ModelShape
from workflows.engine import Action


def _layout_and_model(spec, featurizer, *, seed):
    layout = ActionLayout(spec, featurizer)
    shape = ModelShape(
        featurizer.size, layout.num_actions, tuple(layout.head_sizes), tuple(layout.head_owner), 32
    )
    torch.manual_seed(seed)
    model = ActorCritic(shape)
    # Large random head weights: a near-deterministic, arbitrary preference for every option,
    # masked or not, so masking is what keeps the samples valid.
    with torch.no_grad():
        model.policy_head.weight.normal_(0, 5.0)
    return layout, model


def test_masked_sampling_never_picks_an_invalid_action(world, env, spec, featurizer):
    generator = torch.Generator().manual_seed(0)
    for seed in range(4):
        layout, model = _layout_and_model(spec, featurizer, seed=seed)
        for case in world.test_cases[:40]:
            observation = env.reset(case)
            done = False
            called: set[str] = set()
            while not done:
                mask = layout.mask(observation)
                sample = model.act(
                    torch.from_numpy(featurizer.transform(observation))[None],
                    torch.from_numpy(mask)[None],
                    generator=generator,
                )
                action_index = int(sample.action_B[0])
                heads = [int(i) for i in sample.heads_B_H[0]]
                assert mask[action_index], layout.action_names[action_index]
                for position, head in enumerate(layout.heads):
                    if head.action_index == action_index:
                        assert mask[layout.num_actions + head.start + heads[position]]
                action = layout.build_action(action_index, heads, observation)
                if not action.is_decision:
                    assert action.name not in called
                    called.add(action.name)
                observation, _, done, info = env.step(action)
                assert info["error"] is None, info["error"]


def test_mask_follows_requires_and_hides_called_tools(world, env, spec, featurizer):
    layout = ActionLayout(spec, featurizer)
    names = list(layout.action_names)
    observation = env.reset(world.test_cases[0])
    mask = layout.mask(observation)
    assert mask[names.index("lookup_policy")]
    assert not mask[names.index("check_coverage")]  # requires lookup_policy
    assert not mask[names.index("fraud_score")]
    assert mask[names.index("deny")] and mask[names.index("escalate")]
    observation, _, _, _ = env.step(Action.tool("lookup_policy"))
    mask = layout.mask(observation)
    assert not mask[names.index("lookup_policy")]
    assert mask[names.index("check_coverage")] and mask[names.index("claim_history")]
    # Before compute_payout, the amount can only point at values already visible.
    amount = next(h for h in layout.heads if h.argument == "amount")
    allowed = {
        amount.options[i].name for i in range(amount.size) if mask[layout.num_actions + amount.start + i]
    }
    assert "amount_claimed" in allowed
    assert "compute_payout.payout" not in allowed


def test_the_last_step_is_kept_for_a_decision(world, env, spec, featurizer):
    layout = ActionLayout(spec, featurizer)
    observation = env.reset(world.test_cases[0])
    while observation.steps_left > 1:
        observation, _, _, _ = env.step(Action.tool("lookup_policy"))  # repeats: valid, wasteful
    mask = layout.mask(observation)
    assert not mask[: layout.num_tools].any()
    assert mask[layout.num_tools : layout.num_actions].any()


def test_incremental_mask_matches_the_full_mask(world, env, spec, featurizer):
    from training.rl import collect_observations

    layout = ActionLayout(spec, featurizer)
    tracker = layout.tracker()
    for observation in collect_observations(env, world.test_cases[:30]):
        np.testing.assert_array_equal(tracker.mask(observation), layout.mask(observation))
