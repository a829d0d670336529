"""The versioned REST API as a Django app: it owns the idempotency keys table."""

from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "caseloop.api"
    label = "api"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "REST API"

    def ready(self) -> None:
        from caseloop.api import schema  # noqa: F401  registers the bearer-key scheme with drf-spectacular
