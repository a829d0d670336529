"""Top-level URL map."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from caseloop import health, metrics  # operations: probes and Prometheus metrics

urlpatterns = [
    path("", include("caseloop.accounts.urls")),
    path("", include("workflows.urls")),
    path("training/", include("training.urls")),
    path("audit/", include("caseloop.audit.urls")),
    path("organization/webhooks/", include("caseloop.webhooks.urls")),
    path("api/", include("caseloop.api.urls")),
    path("django-admin/", admin.site.urls),
    # --- operations: probes and metrics (deploy/README.md, "Health", "Metrics") ---
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # --- end operations ---
]
