"""Caseloop platform package: settings, URLs, the Celery app, accounts and the audit trail."""

from __future__ import annotations

from caseloop.celery import app as celery_app

__all__ = ["celery_app"]
