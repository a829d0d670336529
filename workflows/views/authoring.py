"""Workflow and rubric editors: versions, diffs, reference tables, try-it scoring, red-team panel."""

from __future__ import annotations

urlpatterns: list = []
