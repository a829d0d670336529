"""Training pages: launch, job list with live progress, job detail, evaluation reports, promotion."""

from __future__ import annotations

urlpatterns: list = []
