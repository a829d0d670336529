"""DRF authentication by API key: ``Authorization: Bearer cl_…``."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from caseloop.accounts.services import api_key_authenticate


class ApiKeyUser:
    """Stands in for ``request.user`` when an API key authenticates; it is no Django user."""

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, key) -> None:
        self.api_key = key
        self.pk = None

    def get_username(self) -> str:
        return f"api key {self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(f"{self.keyword} "):
            return None
        key = api_key_authenticate(header[len(self.keyword) + 1 :].strip())
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyUser(key), key

    def authenticate_header(self, request) -> str:
        return self.keyword
