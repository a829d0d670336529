"""Per-credential rate limits, counted in the Django cache (Redis in production and CI).

A fixed window per credential: ``INCR throttle:<credential>:<window>`` is atomic in Redis, so
concurrent requests on many server processes are all counted (DRF's SimpleRateThrottle reads,
appends and writes back a list, which loses counts under concurrency). Over the limit the API
answers 429 with ``Retry-After``: the seconds left in the window. If the cache is unreachable the
request is let through and the failure logged: an outage of the counter store must not take the
API down with it.
"""

from __future__ import annotations

import logging
import math
import time

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from caseloop.api.auth import credential_of

logger = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"3000/min"`` -> (3000, 60)."""
    count, period = rate.split("/")
    return int(count), _UNITS[period[0]]


class CredentialRateThrottle(BaseThrottle):
    scope = "credential"

    def __init__(self) -> None:
        self.limit, self.period = parse_rate(api_settings.DEFAULT_THROTTLE_RATES[self.scope])
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        actor = getattr(request, "actor", None)
        ident = credential_of(actor) if actor is not None else f"ip:{self.get_ident(request)}"
        now = time.time()
        window = int(now // self.period)
        key = f"throttle:{ident}:{self.period}:{window}"
        try:
            # The key outlives its window (the TTL starts at the window's first request), so it never
            # expires while requests of its window still count on it.
            try:
                count = cache.incr(key)
            except ValueError:  # the window's first request
                count = 1 if cache.add(key, 1, timeout=self.period + 1) else cache.incr(key)
        except Exception:  # the counter store is down
            logger.warning("rate limit counter unavailable for %s; request allowed", ident, exc_info=True)
            return True
        if count > self.limit:
            self._wait = math.ceil((window + 1) * self.period - now)
            return False
        return True

    def wait(self) -> float | None:
        return self._wait
