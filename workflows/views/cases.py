"""Cases (import, generate, list, detail), runs and decisions in detail."""

from __future__ import annotations

urlpatterns: list = []
