"""Fixtures for the RL tests: the claims pack's spec, tables, environments and cases.

The RL code imports no Django, so these tests also run with ``-p no:django``. The root conftest
still reads Django settings when it sorts tests (hence the settings module default below) and
has an autouse fixture that asks for pytest-django's ``settings``; without the plugin a
stand-in object takes its place.
"""

from __future__ import annotations

import os
import types

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caseloop.settings")

import pytest
import torch

from tests.rl.rl_factories import ClaimsWorld
from workflows.engine import Environment, Rubric, WorkflowSpec
from workflows.packs import get_pack

torch.set_num_threads(1)  # tiny networks: one thread is faster, and immune to a busy second core


class _SettingsStandIn:
    """Registered only when pytest-django is not loaded (``-p no:django``)."""

    @pytest.fixture
    def settings(self):
        return types.SimpleNamespace()


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("django"):
        config.pluginmanager.register(_SettingsStandIn(), "rl-settings-stand-in")


@pytest.fixture(scope="session")
def world() -> ClaimsWorld:
    return ClaimsWorld.build()


@pytest.fixture(scope="session")
def spec(world: ClaimsWorld) -> WorkflowSpec:
    return world.spec


@pytest.fixture(scope="session")
def featurizer(world: ClaimsWorld):
    return world.featurizer


@pytest.fixture
def env(world: ClaimsWorld) -> Environment:
    return world.env_factory()


@pytest.fixture(scope="session")
def rubric(world: ClaimsWorld) -> Rubric:
    return world.rubric


@pytest.fixture(scope="session")
def pack():
    return get_pack("claims")
