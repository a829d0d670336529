"""Role-aware main navigation, declared once.

Each entry names a URL and the permission it needs; the context processor shows an entry
only to members who hold that permission. Hiding a link is a courtesy — every view still
checks role and organisation on the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    url_name: str
    permission: str | None  # None: every member
    section: str  # URL prefix that marks the entry current


NAV: tuple[NavItem, ...] = (
    NavItem("Dashboard", "home", None, "/"),
    NavItem("Workflows", "workflow-list", "workflow.view", "/workflows/"),
    NavItem("Cases", "case-list", "case.view", "/cases/"),
    NavItem("Reviews", "review-queue", "review.verdict", "/reviews/"),
    NavItem("Training", "training-job-list", "training.view", "/training/"),
    NavItem("Audit", "audit-event-list", "audit.view", "/audit/"),
    NavItem("Organisation", "organization-members", "members.manage", "/organization/"),
)


def nav_items(actor, path: str) -> list[dict]:
    items = []
    for item in NAV:
        if actor is None or (item.permission and not actor.can(item.permission)):
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:  # an area whose pages are not installed
            continue
        current = path == "/" if item.section == "/" else path.startswith(item.section)
        items.append({"label": item.label, "url": url, "current": current})
    return items


def navigation(request) -> dict:
    return {"nav": nav_items(getattr(request, "actor", None), request.path)}
