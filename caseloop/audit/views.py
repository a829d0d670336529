"""Audit pages: filtered event list, search in explanations, chain verification, export."""

from __future__ import annotations

urlpatterns: list = []
