"""The evaluation path's in-process state: compiled environments and environment keys.

Steady state costs no database query and no network round trip per evaluation. Each process keeps
a snapshot per environment (its compiled flags, the flagd document and the live key prefixes) and
revalidates it at most every `FLAGS_CONFIG_POLL_SECONDS` against the environment's
`config_version`, published in the shared cache (Redis) by every change after commit. A version
mismatch reloads the snapshot from the database; a cache outage falls back to reading the version
from the database. A kill switch therefore reaches every process within one poll interval.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.cache import cache

from apps.flags import flagd
from apps.flags.evaluation import (
    PORTAL_ONLY_OPERATORS,
    CompiledFlag,
    compile_flag_set,
    operators_used,
)
from apps.flags.models import Environment, EnvironmentKey, Flag
from apps.tenancy import rls
from apps.tenancy.authentication import hash_secret, parse_token

logger = logging.getLogger(__name__)

KEY_PREFIX = "ofk_"
UNKNOWN_KEY_TTL = 10.0
DATABASE_CHECK_SECONDS = 30.0


def version_cache_key(environment_id: int) -> str:
    return f"flags:env:{environment_id}:version"


@dataclass
class Snapshot:
    environment_id: int
    tenant_id: int
    environment_key: str
    version: int
    flags: dict[str, CompiledFlag]
    document: dict[str, Any]
    live_keys: dict[str, str]  # prefix → secret hash
    flag_ids: dict[str, int] = field(default_factory=dict)  # key → Flag id (for statistics)
    needs_targeting_key: frozenset[str] = frozenset()  # flags that split by targetingKey
    portal_only: tuple[str, ...] = ()  # flags using operators flagd cannot evaluate
    time_dependent: bool = False  # some targeting reads $flagd.timestamp
    checked_at: float = field(default_factory=time.monotonic)
    verified_at: float = field(default_factory=time.monotonic)  # last compared with the database
    bulk_etags: dict[tuple, str] = field(default_factory=dict)  # (key, host, body) → ETag
    fragments: dict[tuple, bytes] = field(default_factory=dict)  # (flag, variant, reason) → JSON

    def remember_bulk_etag(self, request: tuple, etag: str) -> None:
        """What a bulk request body evaluated to in this version, for cheap revalidation (304).

        Valid while the snapshot lives (a change replaces the snapshot), unless some flag reads
        the clock. Bounded: bodies over 4 KB are not kept, and the map is emptied at 10,000.
        """
        if self.time_dependent or len(request[-1]) > 4096:
            return
        if len(self.bulk_etags) >= 10_000:
            self.bulk_etags.clear()
        self.bulk_etags[request] = etag

    @cached_property
    def document_bytes(self) -> bytes:
        return json.dumps(self.document, separators=(",", ":")).encode()

    @cached_property
    def bulk_metadata(self) -> bytes:
        return json.dumps(
            {"environment": self.environment_key, "configVersion": self.version},
            separators=(",", ":"),
        ).encode()

    @property
    def etag(self) -> str:
        return f'"flagd-{self.environment_id}-v{self.version}"'


@dataclass(frozen=True)
class KeyEntry:
    environment_id: int | None  # None: no such key (cached briefly)
    loaded_at: float


_snapshots: dict[int, Snapshot] = {}
_keys: dict[str, KeyEntry] = {}
_lock = threading.Lock()


def reset() -> None:
    """Forget everything (tests; a process after fork)."""
    with _lock:
        _snapshots.clear()
        _keys.clear()


def parse_key(raw: str) -> tuple[str, str] | None:
    return parse_token(raw, KEY_PREFIX)


def _published_version(environment_id: int) -> int | None:
    try:
        value = cache.get(version_cache_key(environment_id))
    except Exception:  # the cache is down: the database still knows
        logger.warning("flags: cache unavailable, reading the version from the database")
        value = None
    return int(value) if value is not None else None


def _database_version(environment_id: int) -> int | None:
    with rls.all_tenants_context():
        return (
            Environment._base_manager.filter(pk=environment_id)
            .values_list("config_version", flat=True)
            .first()
        )


def publish_version(environment_id: int, version: int) -> None:
    """Tell every process that the environment changed (called after commit)."""
    try:
        cache.set(version_cache_key(environment_id), version, timeout=None)
    except Exception:
        logger.warning(
            "flags: could not publish version %s of environment %s", version, environment_id
        )


def load_snapshot(environment_id: int) -> Snapshot | None:
    with rls.all_tenants_context():
        environment = Environment._base_manager.filter(pk=environment_id).first()
    if environment is None:
        return None
    with rls.tenant_context(environment.tenant_id):
        document = flagd.environment_document(environment)
        live_keys = dict(
            EnvironmentKey.objects.for_tenant(environment.tenant_id)
            .filter(environment_id=environment_id, revoked_at__isnull=True)
            .values_list("prefix", "secret_hash")
        )
        flag_ids = dict(Flag.objects.for_tenant(environment.tenant_id).values_list("key", "pk"))
    flags = compile_flag_set(document)
    used = {key: operators_used(flag.targeting) for key, flag in flags.items() if flag.targeting}
    snapshot = Snapshot(
        environment_id=environment.pk,
        tenant_id=environment.tenant_id,
        environment_key=environment.key,
        version=environment.config_version,
        flags=flags,
        document=document,
        live_keys=live_keys,
        flag_ids=flag_ids,
        needs_targeting_key=frozenset(key for key, ops in used.items() if "fractional" in ops),
        portal_only=tuple(sorted(key for key, ops in used.items() if ops & PORTAL_ONLY_OPERATORS)),
        time_dependent="$flagd.timestamp" in json.dumps(document),
    )
    try:  # add, not set: never overwrite a newer version another process published
        cache.add(version_cache_key(environment_id), environment.config_version, timeout=None)
    except Exception:
        logger.warning("flags: could not publish the version of environment %s", environment_id)
    return snapshot


def snapshot_for(environment_id: int) -> Snapshot | None:
    """The environment's compiled configuration, revalidated at most once per poll interval."""
    now = time.monotonic()
    current = _snapshots.get(environment_id)
    if current is not None and now - current.checked_at < settings.FLAGS_CONFIG_POLL_SECONDS:
        return current
    if current is not None:
        version = _published_version(environment_id)
        if version is None or now - current.verified_at > DATABASE_CHECK_SECONDS:
            # The database is the truth: checked when the cache has no version and every half
            # minute anyway, so a lost or out-of-order publish cannot keep a process stale.
            version = _database_version(environment_id)
            current.verified_at = now
        if version == current.version:
            current.checked_at = now
            return current
    try:
        fresh = load_snapshot(environment_id)
    except Exception:
        if current is None:
            raise
        # Keep serving the last good configuration rather than failing every evaluation; the
        # next poll tries again. Validation should make this unreachable; the log says if not.
        logger.exception(
            "flags: could not load environment %s; serving v%s", environment_id, current.version
        )
        current.checked_at = now
        return current
    with _lock:
        if fresh is None:
            _snapshots.pop(environment_id, None)
        else:
            _snapshots[environment_id] = fresh
    return fresh


def _environment_of_prefix(prefix: str) -> int | None:
    now = time.monotonic()
    entry = _keys.get(prefix)
    if entry is not None and (
        entry.environment_id is not None or now - entry.loaded_at < UNKNOWN_KEY_TTL
    ):
        return entry.environment_id
    with rls.all_tenants_context():
        environment_id = (
            EnvironmentKey._base_manager.filter(prefix=prefix, revoked_at__isnull=True)
            .values_list("environment_id", flat=True)
            .first()
        )
    with _lock:
        if len(_keys) > 10_000:  # bounded: a flood of made-up prefixes cannot grow it forever
            _keys.clear()
        _keys[prefix] = KeyEntry(environment_id, now)
    return environment_id


def authenticate(raw_key: str) -> tuple[Snapshot, str] | None:
    """The snapshot of the environment this key may evaluate and the key's prefix, or None."""
    parsed = parse_key(raw_key)
    if parsed is None:
        return None
    prefix, secret = parsed
    environment_id = _environment_of_prefix(prefix)
    if environment_id is None:
        return None
    snapshot = snapshot_for(environment_id)
    if snapshot is None:
        return None
    stored = snapshot.live_keys.get(prefix)
    if stored is None or not hmac.compare_digest(stored, hash_secret(secret)):
        return None
    return snapshot, prefix


class RateLimiter:
    """A fixed one-minute window per key, in this process (no round trip per evaluation).

    With N worker processes a key may make up to N times the limit; docs/configuration.md says so.
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, prefix: str, limit: int) -> int:
        """0 if allowed, else the seconds until the window resets."""
        now = int(time.time())
        window = now // 60
        current_window, count = self._windows.get(prefix, (window, 0))
        if current_window != window:
            count = 0
        count += 1
        self._windows[prefix] = (window, count)
        if len(self._windows) > 10_000:
            self._windows = {prefix: (window, count)}
        return 0 if count <= limit else 60 - now % 60


limiter = RateLimiter()
