"""Sign-in attempts are limited per username and client address.

After ``LOGIN_FAILURE_LIMIT`` failed sign-ins (default 5) for one username from one address within
``LOGIN_FAILURE_WINDOW`` seconds (default 300), further attempts for that pair are refused with 429
and a message saying when to try again, without checking the password at all, until the window that
began with the first failure ends. A successful sign-in clears the count. Counts live in Django's
cache (Redis in production), so every web process shares them.

The client address is ``REMOTE_ADDR``; behind a proxy that appends the client's address to
``X-Forwarded-For`` set ``TRUST_X_FORWARDED_FOR`` and the last address of that header is used.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def _keys(username: str, ip: str) -> tuple[str, str]:
    # Hashed: usernames are user input and cache keys have a restricted alphabet and length.
    digest = hashlib.sha256(f"{username.strip().lower()}\n{ip}".encode()).hexdigest()
    return f"login-failures:{digest}", f"login-failures-since:{digest}"


def failures_retry_after(username: str, ip: str) -> int:
    """Seconds until this username may try again from ``ip``; 0 when it may try now."""
    count_key, since_key = _keys(username, ip)
    if (cache.get(count_key) or 0) < settings.LOGIN_FAILURE_LIMIT:
        return 0
    since = cache.get(since_key) or time.time()
    return max(1, math.ceil(since + settings.LOGIN_FAILURE_WINDOW - time.time()))


def failure_record(username: str, ip: str) -> int:
    """Count one failed sign-in; returns the count in the current window."""
    count_key, since_key = _keys(username, ip)
    window = settings.LOGIN_FAILURE_WINDOW
    cache.add(since_key, time.time(), timeout=window)
    cache.add(count_key, 0, timeout=window)
    try:
        return cache.incr(count_key)
    except ValueError:  # expired between add and incr: this failure starts a new window
        cache.set(since_key, time.time(), timeout=window)
        cache.set(count_key, 1, timeout=window)
        return 1


def failures_clear(username: str, ip: str) -> None:
    cache.delete_many(list(_keys(username, ip)))


def locked_message(retry_after: int) -> str:
    minutes = math.ceil(retry_after / 60)
    wait = f"{minutes} minute{'s' if minutes != 1 else ''}" if retry_after > 60 else f"{retry_after} seconds"
    return (
        "Too many failed sign-in attempts for this username from your address. "
        f"Try again in {wait}, or ask an administrator of your organisation to reset your password."
    )


class RateLimitedAuthenticationForm(AuthenticationForm):
    """Refuses a locked username and address before the password is checked; counts failures."""

    retry_after = 0

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip = client_ip(self.request) if self.request is not None else ""
        self.retry_after = failures_retry_after(username, ip)
        if self.retry_after:
            raise ValidationError(locked_message(self.retry_after), code="rate_limited")
        try:
            return super().clean()
        except ValidationError:
            if username:
                failure_record(username, ip)
            raise


class RateLimitedLoginView(LoginView):
    """Django's LoginView with the limit above in front of the password check."""

    template_name = "accounts/login.html"
    form_class = RateLimitedAuthenticationForm

    def form_valid(self, form):
        failures_clear(form.cleaned_data.get("username") or "", client_ip(self.request))
        return super().form_valid(form)

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response
