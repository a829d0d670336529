"""The difficulty curriculum advances on success and is logged as curriculum/level."""

from __future__ import annotations

from tests.rl.rl_factories import small_config
from training.rl import Curriculum, train
from workflows.engine import CaseData


def _cases():
    return [CaseData(f"c{level}-{i}", {}, None, level) for level in (0, 1, 2) for i in range(5)]


def test_curriculum_advances_when_the_success_rate_crosses_the_threshold():
    curriculum = Curriculum(_cases(), enabled=True, threshold=0.8, window=10)
    assert curriculum.level == 0 and {c.difficulty for c in curriculum.pool()} == {0}
    for _ in range(8):
        assert not curriculum.record(True)
    assert not curriculum.record(False)  # 8/9: the window is not full yet
    assert curriculum.level == 0
    assert curriculum.record(True)  # 9/10 >= 0.8
    assert curriculum.level == 1
    assert curriculum.success_rate == 0.0  # a fresh window for the new level


def test_curriculum_stays_while_failing_and_pools_earlier_levels():
    curriculum = Curriculum(_cases(), enabled=True, threshold=0.9, window=4)
    for _ in range(20):
        curriculum.record(False)
    assert curriculum.level == 0
    for _ in range(4):
        curriculum.record(True)
    assert curriculum.level == 1
    assert {c.difficulty for c in curriculum.pool()} == {0, 1}


def test_disabled_curriculum_uses_every_case():
    curriculum = Curriculum(_cases(), enabled=False)
    assert curriculum.level == 2 and len(curriculum.pool()) == 15
    assert curriculum.record(True) is False


def test_training_logs_the_curriculum_level(world):
    levels = []
    train(
        small_config(total_updates=3, curriculum=True, curriculum_window=20, curriculum_threshold=0.01),
        env_factory=world.env_factory,
        train_cases=world.train_cases,
        metrics_sink=lambda step, metrics: levels.append(metrics["curriculum/level"]),
    )
    assert levels[0] in (0.0, 1.0) and levels[-1] == 1.0
