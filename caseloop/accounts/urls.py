from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from caseloop.accounts import views
from caseloop.accounts.ratelimit import RateLimitedLoginView

urlpatterns = [
    path("login/", RateLimitedLoginView.as_view(), name="login"),  # operations: failures are rate-limited
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("organization/switch/", views.organization_switch, name="organization-switch"),
    path("organization/members/", views.members, name="organization-members"),
    path("organization/members/<int:user_id>/role/", views.member_role, name="organization-member-role"),
    path(
        "organization/members/<int:user_id>/remove/", views.member_remove, name="organization-member-remove"
    ),
    path("organization/api-keys/", views.api_keys, name="organization-api-keys"),
    path(
        "organization/api-keys/<int:key_id>/revoke/",
        views.api_key_revoke_view,
        name="organization-api-key-revoke",
    ),
]
