"""Evaluation statistics, gathered in memory and flushed periodically.

An evaluation only increments a counter in this process. At most every
`FLAGS_STATS_FLUSH_SECONDS` (60 s), the first request that notices hands the counters to a
background thread, which adds them to `FlagEvaluationCount` (one upsert) and moves
`FlagState.last_evaluated_at` forward (one update). No database write happens per evaluation;
a process that dies loses at most one interval of counts (these are statistics, not records).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, connections

from apps.tenancy import rls

logger = logging.getLogger(__name__)

# (tenant id, environment id, flag id, variant) → evaluations since the last flush
_counts: Counter = Counter()
_last_flush = time.monotonic()
_flush_lock = threading.Lock()


_counts_lock = threading.Lock()


def record(tenant_id: int, environment_id: int, flag_id: int, variant: str | None) -> None:
    with _counts_lock:  # request threads (gthread) and the flush swap share the counter
        _counts[(tenant_id, environment_id, flag_id, variant or "")] += 1


def maybe_flush() -> None:
    """Called once per request: starts a flush when the interval has passed."""
    global _last_flush
    now = time.monotonic()
    if now - _last_flush < settings.FLAGS_STATS_FLUSH_SECONDS or not _counts:
        return
    if not _flush_lock.acquire(blocking=False):
        return
    _last_flush = now
    threading.Thread(target=_flush_in_thread, name="flags-stats-flush", daemon=True).start()


def _take() -> Counter:
    global _counts
    with _counts_lock:
        taken, _counts = _counts, Counter()
    return taken


def _flush_in_thread() -> None:
    try:
        flush()
    except Exception:
        logger.exception("flags: could not flush evaluation statistics")
    finally:
        _flush_lock.release()
        connections.close_all()


def flush(at: datetime | None = None) -> int:
    """Write the counters gathered so far; returns the number of evaluations written."""
    taken = _take()
    if not taken:
        return 0
    at = at or datetime.now(UTC)
    rows = [
        (tenant_id, environment_id, flag_id, variant, at.date(), count)
        for (tenant_id, environment_id, flag_id, variant), count in taken.items()
    ]
    seen = sorted({(environment_id, flag_id) for _, environment_id, flag_id, _, _, _ in rows})
    with rls.all_tenants_context(), connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO flags_flagevaluationcount"
            " (tenant_id, environment_id, flag_id, variant, day, count)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (environment_id, flag_id, variant, day)"
            " DO UPDATE SET count = flags_flagevaluationcount.count + EXCLUDED.count",
            rows,
        )
        cursor.executemany(
            "UPDATE flags_flagstate SET last_evaluated_at = %s"
            " WHERE environment_id = %s AND flag_id = %s"
            " AND (last_evaluated_at IS NULL OR last_evaluated_at < %s)",
            [(at, environment_id, flag_id, at) for environment_id, flag_id in seen],
        )
    return sum(taken.values())
