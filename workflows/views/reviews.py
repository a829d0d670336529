"""The review queue: claim next, verdicts by keyboard, four-eyes state."""

from __future__ import annotations

urlpatterns: list = []
