from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "caseloop.accounts"
    label = "accounts"
    verbose_name = "Accounts"
