"""Sign-in is rate-limited per username and client address, in the shared (Redis) cache."""

from __future__ import annotations

import time

import pytest

from caseloop.accounts.ratelimit import failure_record, failures_clear
from tests.factories import make_actor

pytestmark = [pytest.mark.django_db, pytest.mark.redis]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def user(settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    settings.LOGIN_FAILURE_WINDOW = 300
    user = make_actor().user
    # Usernames repeat across test runs and the cache outlives them: start from a clean count.
    for ip in ("127.0.0.1", "10.0.0.9", "198.51.100.7", "198.51.100.8"):
        failures_clear(user.username, ip)
    yield user
    for ip in ("127.0.0.1", "10.0.0.9", "198.51.100.7", "198.51.100.8"):
        failures_clear(user.username, ip)


def sign_in(client, username, password, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_after_five_failures_even_the_right_password_is_refused_with_a_clear_message(client, user):
    for _ in range(5):
        response = sign_in(client, user.username, "wrong")
        assert response.status_code == 200
        assert b"enter a correct username and password" in response.content
    response = sign_in(client, user.username, PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts for this username from your address" in response.content
    assert b"Try again in 5 minutes" in response.content
    assert 290 <= int(response["Retry-After"]) <= 300
    assert not signed_in(client)


def test_the_limit_is_per_username_and_address(client, user):
    other = make_actor().user
    failures_clear(other.username, "127.0.0.1")
    for _ in range(5):
        sign_in(client, user.username, "wrong")
    assert sign_in(client, user.username, PASSWORD).status_code == 429
    # The same address may still sign in another user...
    assert sign_in(client, other.username, PASSWORD).status_code == 302
    client.logout()
    # ...and the same user from another address.
    assert sign_in(client, user.username, PASSWORD, REMOTE_ADDR="10.0.0.9").status_code == 302
    assert signed_in(client)


def test_a_successful_sign_in_clears_the_count(client, user):
    for _ in range(4):
        sign_in(client, user.username, "wrong")
    assert sign_in(client, user.username, PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert sign_in(client, user.username, "wrong").status_code == 200
    assert sign_in(client, user.username, PASSWORD).status_code == 302


def test_the_lock_ends_with_the_window(client, user, settings):
    settings.LOGIN_FAILURE_WINDOW = 3
    for _ in range(5):  # counted directly: five hashed password checks could outlast a 3 s window
        failure_record(user.username, "127.0.0.1")
    locked = sign_in(client, user.username, PASSWORD)
    assert locked.status_code == 429 and b"Try again in" in locked.content
    retry_after = int(locked["Retry-After"])
    assert 1 <= retry_after <= 3
    time.sleep(retry_after + 0.3)
    assert sign_in(client, user.username, PASSWORD).status_code == 302


def test_usernames_differing_in_case_share_a_count(client, user):
    for _ in range(5):
        sign_in(client, user.username.upper(), "wrong")
    assert sign_in(client, user.username, PASSWORD).status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_address_counts(client, user, settings):
    settings.TRUST_X_FORWARDED_FOR = True
    for _ in range(5):
        sign_in(client, user.username, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.1, 198.51.100.7")
    assert sign_in(client, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 429
    assert sign_in(client, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 302
