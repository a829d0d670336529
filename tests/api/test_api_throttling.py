"""Per-credential rate limits, counted in Redis: 429 with Retry-After, one budget per credential,
and exact counting under concurrent requests."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from django.core.cache import cache

from caseloop.accounts.models import Role
from tests.api.conftest import assert_error, key_client
from tests.factories import make_actor, make_organization

pytestmark = [pytest.mark.redis]


@pytest.fixture
def limited(settings):
    """A limit of 5 requests per credential per day, counted under a key prefix of this test's own."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"credential": "5/day"}}
    default = dict(settings.CACHES["default"], KEY_PREFIX=f"test-throttle-{uuid.uuid4().hex}")
    settings.CACHES = {"default": default}
    assert default["BACKEND"].endswith("RedisCache")
    return settings


@pytest.mark.django_db
def test_over_the_limit_answers_429_with_retry_after(limited, admin):
    client = key_client(admin)
    for _ in range(5):
        assert client.get("/api/v1/ping").status_code == 200
    response = client.get("/api/v1/ping")
    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 86400
    # another credential has its own budget
    assert key_client(admin).get("/api/v1/ping").status_code == 200
    # the counter lives in Redis
    assert any(
        key.startswith(b"test-throttle-")
        for key in cache._cache.get_client().scan_iter(match=b"test-throttle-*")
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_are_all_counted(limited, live_server):
    limited.REST_FRAMEWORK = {**limited.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"credential": "12/day"}}
    admin = make_actor(make_organization(), Role.ADMIN)
    secret = key_client(admin).secret
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def hammer() -> None:
        with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}) as client:
            barrier.wait(timeout=10)
            for _ in range(5):
                code = client.get("/api/v1/ping").status_code
                with lock:
                    statuses.append(code)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 12 + [429] * 18
