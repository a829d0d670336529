"""Shared test set-up: real services, loud about what could not run.

``scripts/test.sh`` points ``DATABASE_URL`` at PostgreSQL and ``CELERY_BROKER_URL`` at Redis when
they answer. Tests marked ``postgres`` or ``redis`` need them; outside CI they are skipped with a
summary line that says so, and with ``CI`` set a missing service stops the run.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings

IN_CI = bool(os.environ.get("CI"))


def _on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def _redis_url() -> str | None:
    url = settings.CELERY_BROKER_URL
    return url if url.startswith("redis") else None


_skipped_for_services: dict[str, int] = {"postgres": 0, "redis": 0}


def pytest_collection_modifyitems(config, items):
    missing = {"postgres": not _on_postgres(), "redis": _redis_url() is None}
    if IN_CI and any(missing.values()):
        names = " and ".join(name for name, gone in missing.items() if gone)
        pytest.exit(
            f"CI is set but {names} is not configured for the tests (see scripts/test.sh)", returncode=3
        )
    for item in items:
        for service, gone in missing.items():
            if gone and service in item.keywords:
                _skipped_for_services[service] += 1
                item.add_marker(pytest.mark.skip(reason=f"needs {service}; not reachable, and CI is not set"))


def pytest_terminal_summary(terminalreporter):
    for service, count in _skipped_for_services.items():
        if count:
            terminalreporter.write_sep(
                "!",
                f"{count} TESTS SKIPPED: {service} is not reachable (they run, and must pass, in CI)",
                red=True,
            )


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    """Checkpoints go to a fresh directory per test: job ids repeat across test databases, and a
    stale checkpoint from another run must never be resumed."""
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
