from __future__ import annotations


def membership(request) -> dict:
    actor = getattr(request, "actor", None)
    return {
        "current_organization": getattr(request, "organization", None),
        "current_role": actor.role if actor is not None else None,
        "memberships": getattr(request, "memberships", []),
        "actor": actor,
    }
