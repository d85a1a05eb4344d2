"""The principal throttle on Redis: DRF's sliding-log semantics, one atomic script per request.

Called directly (no HTTP) with a controlled clock; `tests/ops/test_problems.py` covers the 429
problem document and Retry-After through the API."""

import secrets
import threading
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.cache import cache

from opsportal.api.throttling import PrincipalRateThrottle

# Redis is the cache wherever the suite runs on PostgreSQL (CI): a skip there fails the run.
pytestmark = pytest.mark.postgres


@pytest.fixture
def throttle_at(monkeypatch):
    if not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        pytest.skip("needs Redis as the cache")
    principal = SimpleNamespace(auth=SimpleNamespace(pk=secrets.randbelow(10**12)), user=None)
    view = SimpleNamespace(throttle_scope=None)

    def check(rate: str, now: float) -> tuple[bool, float | None]:
        monkeypatch.setitem(PrincipalRateThrottle.THROTTLE_RATES, "principal", rate)
        throttle = PrincipalRateThrottle()
        throttle.timer = lambda: now
        allowed = throttle.allow_request(principal, view)
        return allowed, None if allowed else throttle.wait()

    yield check
    cache.delete(f"throttle:principal:token:{principal.auth.pk}:log")


def test_at_most_n_in_any_window_and_refusals_are_not_counted(throttle_at):
    assert [throttle_at("3/min", t)[0] for t in (1000.0, 1010.0, 1020.0)] == [True] * 3
    allowed, wait = throttle_at("3/min", 1030.0)
    assert not allowed and wait == pytest.approx(30.0)
    assert throttle_at("3/min", 1059.0) == (False, pytest.approx(1.0))
    # The first request leaves the window at 1060; the refused ones never entered it.
    assert throttle_at("3/min", 1060.5)[0] is True
    assert throttle_at("3/min", 1061.0)[0] is False
    assert throttle_at("3/min", 1070.5)[0] is True


def test_concurrent_requests_cannot_pass_on_a_stale_count(throttle_at):
    """30 requests of one principal at the same moment against 10/min: exactly 10 pass (a GET
    then SET of the history, DRF's own way, lets several read the same count)."""
    results: list[bool] = []
    barrier = threading.Barrier(30)

    def one() -> None:
        barrier.wait()
        results.append(throttle_at("10/min", 5000.0)[0])

    threads = [threading.Thread(target=one) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results).count(True) == 10 and len(results) == 30


def test_a_lowered_rate_waits_for_enough_entries_to_leave(throttle_at):
    """Five requests under 5/min, then the rate is lowered to 2/min: the next one may pass only
    when four have left the window (the fourth's time plus a minute), not when the first has."""
    for t in (1000.0, 1001.0, 1002.0, 1003.0, 1004.0):
        assert throttle_at("5/min", t)[0] is True
    allowed, wait = throttle_at("2/min", 1010.0)
    assert not allowed and wait == pytest.approx(1063.0 - 1010.0)
    assert throttle_at("2/min", 1062.5)[0] is False
    assert throttle_at("2/min", 1063.5)[0] is True
