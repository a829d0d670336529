"""Typed reads of environment variables that fail loudly on a bad value.

Settings call these instead of ``os.environ.get`` so that ``DEBUG=ture`` or a malformed
``DATABASE_URL`` stops the process at start-up with a message naming the variable, rather
than silently meaning something else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str, environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(name, default)


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int, environ: Mapping[str, str] = os.environ, *, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    raw = environ.get(name)
    if raw is None:
        return default
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name} is set but lists nothing; give comma-separated values.")
    return items


def env_database(name: str, default: str, environ: Mapping[str, str] = os.environ) -> dict:
    import dj_database_url

    raw = environ.get(name, default)
    if "://" not in raw:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a database URL (e.g. postgres://user@host:5432/db)."
        )
    try:
        config = dj_database_url.parse(raw, conn_max_age=60)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} cannot be parsed: {exc}") from None
    engine = config.get("ENGINE", "")
    if not engine.endswith(("postgresql", "sqlite3")):
        raise ImproperlyConfigured(f"{name} uses {engine!r}; Caseloop supports PostgreSQL and SQLite.")
    return config


def env_broker(name: str, default: str, environ: Mapping[str, str] = os.environ) -> str:
    raw = environ.get(name, default)
    if not raw.startswith(("redis://", "rediss://", "memory://")):
        raise ImproperlyConfigured(f"{name}={raw!r} must be a redis:// URL (or memory:// for tests).")
    return raw
