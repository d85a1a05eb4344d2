"""Throttling per principal: the API token if there is one, else the user, else the client IP.

The semantics are DRF's `SimpleRateThrottle` (a sliding log: at most N requests in any window of
the rate's length; a refused request is not counted). With Redis as the cache the log is a
sorted set updated by one Lua script, so a request costs one round trip instead of a GET and a
SET of a pickled list, and concurrent requests of one principal in different workers cannot both
pass on a stale count. Any other cache (the file cache of `make run`) uses DRF's own code.
"""

from __future__ import annotations

import secrets

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

# KEYS[1]: the principal's log. ARGV: now (s), window (s), limit, a unique member.
# Returns {allowed, count after, the score of the entry whose expiry brings the count under the
# limit (the oldest, unless the limit was lowered), or false}. Scores leave Lua as strings: a Lua
# number would be truncated to an integer reply.
SLIDING_LOG = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
local rank = math.max(count - limit, 0)
local frees = redis.call('ZRANGE', KEYS[1], rank, rank, 'WITHSCORES')
return {allowed, count, frees[2] or false}
"""

_script = None


def _sliding_log(client):
    """The script, registered once per process (each call passes its own client)."""
    global _script
    if _script is None:
        _script = client.register_script(SLIDING_LOG)
    return _script


class PrincipalRateThrottle(SimpleRateThrottle):
    scope = "principal"

    def __init__(self):
        """The rate depends on the view's scope, so it is resolved in allow_request."""

    def get_rate(self):
        view_scope = getattr(self.view, "throttle_scope", None)
        rates = self.THROTTLE_RATES
        if view_scope and view_scope in rates:
            return rates[view_scope]
        return rates[self.scope]

    def allow_request(self, request, view):
        self.view = view
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        backend = caches[DEFAULT_CACHE_ALIAS]  # `self.cache` is the proxy, not the backend
        self._redis = isinstance(backend, RedisCache)
        if self.rate is None or not self._redis:
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        # Not the key DRF's pickled list used: a sorted set under it would be a WRONGTYPE error
        # during a deploy or a rollback.
        key = backend.make_and_validate_key(f"{self.key}:log")
        # Django's RedisCache has no public accessor for its client; this is the one it uses.
        client = backend._cache.get_client(key, write=True)
        member = f"{self.now:.6f}:{secrets.token_hex(4)}"
        allowed, _count, frees = _sliding_log(client)(
            keys=[key],
            args=[repr(self.now), self.duration, self.num_requests, member],
            client=client,
        )
        self._frees_at = float(frees) + self.duration if frees else None
        return bool(allowed)

    def wait(self):
        if not self._redis:
            return super().wait()
        if self._frees_at is None:
            return self.duration
        return max(0.0, self._frees_at - self.now)

    def get_cache_key(self, request, view):
        token = getattr(request, "auth", None)
        if token is not None and getattr(token, "pk", None):
            ident = f"token:{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        scope = getattr(view, "throttle_scope", None) or self.scope
        return f"throttle:{scope}:{ident}"
