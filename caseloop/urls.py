"""Top-level URL map."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from caseloop import health  # operations: liveness and readiness probes

urlpatterns = [
    path("", include("caseloop.accounts.urls")),
    path("", include("workflows.urls")),
    path("training/", include("training.urls")),
    path("audit/", include("caseloop.audit.urls")),
    path("organization/webhooks/", include("caseloop.webhooks.urls")),
    path("api/", include("caseloop.api.urls")),
    path("django-admin/", admin.site.urls),
    # --- operations: probes (deploy/README.md, "Health") ---
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # --- end operations ---
]
