"""The delivery engine: claim due deliveries, send them, record every attempt.

- Claiming is one statement: an `UPDATE … RETURNING` of the rows a locking
  `SELECT … FOR UPDATE SKIP LOCKED LIMIT n` picked, which leases them to this worker, so any
  number of workers (and the beat sweeper) can run without sending a delivery twice at once.
  A worker that dies mid-send leaves an expired lease, and the row is claimed again: delivery is
  at-least-once, and the `Idempotency-Key` sent with every attempt lets receivers drop repeats.
- Each batch takes up to BATCH_SIZE due deliveries, oldest first, so a backlog is drained in
  batches (fewer round trips) and no delivery waits behind newer ones. A task triggered for n
  deliveries works through up to n / BATCH_SIZE batches (`drain`). No request of a batch starts
  after `send_deadline` (well inside the lease): what a very slow receiver leaves unsent then is
  released, due again at once with no attempt used, so a batch is never still being sent when
  its lease runs out and another worker claims it.
- Within a channel requests go one after another, so the circuit breaker can stop a dead
  receiver after ALERT_BREAKER_FAILURE_THRESHOLD failures instead of after a whole batch.
  Channels with fast receivers are sent to in the task's own thread, the others each in a
  thread of their own (`apps.alerts.sending`). Threads do only I/O; every database read and
  write happens in the task's own thread.
- A failed request is retried with exponential backoff and jitter; 4xx answers other than
  408/429 are permanent (the request itself is wrong) and go straight to the dead-letter queue,
  as does a delivery that used up its attempts (ALERT_DELIVERY_MAX_ATTEMPTS) or has been trying
  for longer than ALERT_DELIVERY_GIVE_UP_SECONDS.
- An open breaker makes no request and uses up no attempt: the delivery waits for the end of the
  open window (plus jitter), when one half-open probe decides. So a receiver failing half its
  requests still gets everything, and a dead one sees one request per window until the give-up
  age moves its deliveries to the dead-letter queue.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.alerts import payloads, sending
from apps.alerts.metrics import DELIVERIES, DELIVERY_LATENCY
from apps.alerts.models import (
    Alert,
    BreakerState,
    Channel,
    ChannelHealth,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Digest,
)
from apps.alerts.sending import Result
from opsportal import crypto

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
HALF_OPEN_RECHECK_SECONDS = 1.0


def lease_seconds() -> float:
    timeout = settings.ALERT_DELIVERY_TIMEOUT_SECONDS
    return (settings.ALERT_BREAKER_FAILURE_THRESHOLD + 2) * timeout + 30


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random."""
    ceiling = min(
        settings.ALERT_RETRY_MAX_SECONDS, settings.ALERT_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


# --- claiming -----------------------------------------------------------------------------------

# Due: waiting with its time come, or sending under an expired lease. Written as
# `status IN (all three) AND …` so the partial index `delivery_due` can be scanned in
# next_attempt_at order and the LIMIT stops the scan, instead of sorting every due row.
_DUE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.SENDING)


def _due(now: datetime) -> Q:
    return (
        Q(status__in=_DUE_STATUSES)
        & Q(next_attempt_at__lte=now)
        & (~Q(status=DeliveryStatus.SENDING) | Q(lease_until__lt=now))
    )


def _claim_sql(connection) -> tuple[str, list[str]]:
    qn = connection.ops.quote_name
    table = qn(Delivery._meta.db_table)
    fields = Delivery._meta.concrete_fields
    columns = ", ".join(f"{table}.{qn(f.column)}" for f in fields)
    # A MATERIALIZED CTE runs the locking SELECT exactly once; an `IN (subquery)` may be planned
    # as a semi-join that re-runs it and leases more than `limit` rows. Identifiers come from the
    # model and are quoted; every value is a parameter.
    sql = (
        f"WITH due AS MATERIALIZED ("  # noqa: S608
        f" SELECT {qn('id')} FROM {table}"
        f" WHERE {qn('status')} IN (%s, %s, %s) AND {qn('next_attempt_at')} <= %s"
        f" AND ({qn('status')} <> %s OR {qn('lease_until')} < %s)"
        f" ORDER BY {qn('next_attempt_at')}, {qn('id')} LIMIT %s FOR UPDATE SKIP LOCKED)"
        f" UPDATE {table} SET {qn('status')} = %s, {qn('lease_until')} = %s"
        f" FROM due WHERE {table}.{qn('id')} = due.{qn('id')}"
        f" RETURNING {columns}"
    )
    return sql, [f.attname for f in fields]


def claim(now: datetime, limit: int | None = None) -> list[Delivery]:
    """Lease up to `limit` (BATCH_SIZE) due deliveries to this worker, oldest first, with their
    channel, tenant, alert and digest loaded. One statement on PostgreSQL (its own transaction
    unless the caller has one open)."""
    limit = limit or BATCH_SIZE
    alias = router.db_for_write(Delivery)
    connection = connections[alias]
    lease_until = now + timedelta(seconds=lease_seconds())
    if connection.vendor != "postgresql":
        return _attach_related(_claim_orm(now, limit, lease_until))
    sql, attnames = _claim_sql(connection)
    params = [*_DUE_STATUSES, now, DeliveryStatus.SENDING, now, limit]
    params += [DeliveryStatus.SENDING, lease_until]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    batch = [Delivery.from_db(alias, attnames, row) for row in rows]
    batch.sort(key=lambda d: d.pk)
    return _attach_related(batch)


def _claim_orm(now: datetime, limit: int, lease_until: datetime) -> list[Delivery]:
    """The same claim for databases without UPDATE … RETURNING and SKIP LOCKED (SQLite, where
    one writer at a time makes the locking moot)."""
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(_due(now))
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Delivery.objects.filter(pk__in=ids).update(
            status=DeliveryStatus.SENDING, lease_until=lease_until
        )
    return list(Delivery.objects.filter(pk__in=ids).order_by("id"))


def _attach_related(batch: list[Delivery]) -> list[Delivery]:
    """Load the channels (with tenants), alerts and digests of a batch, one query each. A row
    whose channel, alert or digest was deleted meanwhile is gone too (cascade): it is dropped."""
    if not batch:
        return batch
    channels = Channel.objects.select_related("tenant").in_bulk({d.channel_id for d in batch})
    alert_ids = {d.alert_id for d in batch if d.alert_id}
    alerts = Alert.objects.in_bulk(alert_ids) if alert_ids else {}
    digest_ids = {d.digest_id for d in batch if d.digest_id}
    digests = Digest.objects.in_bulk(digest_ids) if digest_ids else {}
    kept = []
    for delivery in batch:
        channel = channels.get(delivery.channel_id)
        if channel is None:
            continue
        if delivery.alert_id and delivery.alert_id not in alerts:
            continue
        if delivery.digest_id and delivery.digest_id not in digests:
            continue
        delivery.channel = channel
        if delivery.alert_id:
            delivery.alert = alerts[delivery.alert_id]
        if delivery.digest_id:
            delivery.digest = digests[delivery.digest_id]
        kept.append(delivery)
    return kept


# --- one batch ----------------------------------------------------------------------------------


def deliver_due(limit: int | None = None) -> dict[str, int]:
    """Claim and send one batch (of up to BATCH_SIZE). Returns counts by outcome."""
    return _deliver_batch(limit or BATCH_SIZE)[0]


def drain(max_batches: int, limit: int | None = None) -> dict[str, int]:
    """Send up to `max_batches` batches (of up to BATCH_SIZE), stopping at the first one that is
    not full (nothing more is due). Returns counts by outcome over all of them."""
    limit = limit or BATCH_SIZE
    totals: dict[str, int] = defaultdict(int)
    for _ in range(max(1, max_batches)):
        counts, claimed = _deliver_batch(limit)
        for key, value in counts.items():
            totals[key] += value
        if claimed < limit:
            break
    return dict(totals)


def _deliver_batch(limit: int) -> tuple[dict[str, int], int]:
    now = timezone.now()
    claimed_at = time.monotonic()
    batch = claim(now, limit)
    if not batch:
        return {}, 0
    by_channel: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in batch:
        by_channel[delivery.channel_id].append(delivery)
    healths = _healths(list(by_channel))
    plans = [_plan(items, now, healths[channel_id]) for channel_id, items in by_channel.items()]
    outcomes = sending.send_all(plans, send_deadline(claimed_at))
    counts: dict[str, int] = defaultdict(int)
    retry_at: list[datetime] = []
    dead_tenants: set[int] = set()
    _record(plans, outcomes, counts, retry_at, dead_tenants)
    _schedule_retries(retry_at)
    if dead_tenants:
        from apps.alerts.services import check_dead_letters

        for tenant_id in dead_tenants:
            check_dead_letters(tenant_id)
    return dict(counts), len(batch)


@dataclass
class ChannelPlan:
    health: ChannelHealth
    deliveries: list[Delivery]
    outgoing: list[payloads.Outgoing | None]
    mode: str  # send | fail_fast | probe | defer
    failures_before: int


def _healths(channel_ids: list[int]) -> dict[int, ChannelHealth]:
    """The breaker rows of these channels in one query (created for a channel that has none)."""
    found = {h.channel_id: h for h in ChannelHealth.objects.filter(channel_id__in=channel_ids)}
    for channel_id in channel_ids:
        if channel_id not in found:
            channel = Channel.objects.get(pk=channel_id)
            found[channel_id], _ = ChannelHealth.objects.get_or_create(
                channel=channel, defaults={"tenant_id": channel.tenant_id}
            )
    return found


def _plan(deliveries: list[Delivery], now: datetime, health: ChannelHealth) -> ChannelPlan:
    channel = deliveries[0].channel
    mode = "send"
    if health.state == BreakerState.OPEN and health.opened_until and health.opened_until > now:
        mode = "fail_fast"
    elif health.state in (BreakerState.OPEN, BreakerState.HALF_OPEN):
        stale_probe = now - timedelta(seconds=lease_seconds())
        became_probe = ChannelHealth.objects.filter(
            Q(pk=health.pk)
            & (
                Q(state=BreakerState.OPEN, opened_until__lte=now)
                | Q(state=BreakerState.HALF_OPEN, probe_started_at__lt=stale_probe)
                | Q(state=BreakerState.HALF_OPEN, probe_started_at__isnull=True)
            )
        ).update(state=BreakerState.HALF_OPEN, probe_started_at=now)
        mode = "probe" if became_probe else "defer"
    secret = None  # decrypted once per channel and batch; on failure build() says why, per row
    if mode in ("send", "probe") and channel.enabled and channel.secret_ciphertext:
        try:
            secret = crypto.decrypt(channel.secret_ciphertext)
        except Exception:
            secret = None
    outgoing: list[payloads.Outgoing | None] = []
    for delivery in deliveries:
        if not channel.enabled:
            outgoing.append(payloads.Outgoing(kind=channel.kind, skip_reason="channel disabled"))
            continue
        if mode in ("fail_fast", "defer"):
            outgoing.append(None)
            continue
        try:
            outgoing.append(payloads.build(delivery, secret=secret))
        except Exception as exc:  # a broken secret or template must not stop the batch
            logger.exception("cannot build notification %s", delivery.pk)
            outgoing.append(
                payloads.Outgoing(kind=channel.kind, skip_reason=f"{type(exc).__name__}: {exc}")
            )
    return ChannelPlan(health, deliveries, outgoing, mode, health.consecutive_failures)


def send_deadline(claimed_at: float) -> float:
    """No request of a batch starts later than this (on the time.monotonic() clock), so that
    the last one, even if it takes the whole timeout, is recorded before the lease runs out and
    no other worker claims the batch while it is still being sent. The deliveries left when it
    passes (a receiver slow enough to take most of the lease) are released: due again at once,
    no attempt used."""
    timeout = settings.ALERT_DELIVERY_TIMEOUT_SECONDS
    return claimed_at + max(timeout, lease_seconds() - timeout - 10)


def _record(
    plans: list[ChannelPlan],
    outcomes: list[list[Result]],
    counts: dict[str, int],
    retry_at: list[datetime],
    dead_tenants: set[int],
) -> None:
    """Record a batch: attempts, statuses and breaker states, in one transaction."""
    now = timezone.now()
    attempts: list[DeliveryAttempt] = []
    breakers: list[tuple[ChannelPlan, int, int, int, str]] = []
    give_up = timedelta(seconds=settings.ALERT_DELIVERY_GIVE_UP_SECONDS)
    for plan, results in zip(plans, outcomes, strict=True):
        kind = plan.deliveries[0].channel.kind
        successes = failures = 0
        consecutive = plan.failures_before
        last_error = ""
        for delivery, result in zip(plan.deliveries, results, strict=True):
            counts[result.outcome] += 1
            if result.outcome == "released":  # not sent in time: due again at once
                delivery.status = DeliveryStatus.RETRYING
                delivery.next_attempt_at = now
                retry_at.append(now)
                continue
            if result.outcome in ("deferred", "breaker_open"):
                # No request was made, so no attempt is used up; only the give-up age applies.
                if result.outcome == "breaker_open" and now - delivery.queued_at >= give_up:
                    _bury(delivery, now, f"gave up after {give_up}: circuit breaker open")
                    dead_tenants.add(delivery.tenant_id)
                    counts["dead"] += 1
                    continue
                delivery.status = DeliveryStatus.RETRYING
                delivery.next_attempt_at = _after_breaker(plan, result, now)
                delivery.last_error = result.error or delivery.last_error
                retry_at.append(delivery.next_attempt_at)
                continue
            DELIVERIES.labels(kind, result.outcome).inc()
            delivery.attempts += 1
            attempts.append(
                DeliveryAttempt(
                    tenant_id=delivery.tenant_id,
                    delivery_id=delivery.pk,
                    number=delivery.attempts,
                    started_at=result.started_at,
                    duration_ms=result.duration_ms,
                    outcome=result.outcome,
                    status_code=result.status_code,
                    error=result.error,
                )
            )
            if result.outcome == "delivered":
                successes += 1
                consecutive = 0
                delivery.status = DeliveryStatus.DELIVERED
                delivery.delivered_at = now
                delivery.last_error = ""
                DELIVERY_LATENCY.labels(kind).observe((now - delivery.created_at).total_seconds())
                continue
            failures += 1
            consecutive += 1
            last_error = result.error
            if (
                result.outcome == "rejected"
                or delivery.attempts >= settings.ALERT_DELIVERY_MAX_ATTEMPTS
                or now - delivery.queued_at >= give_up
            ):
                _bury(delivery, now, result.error)
                dead_tenants.add(delivery.tenant_id)
                counts["dead"] += 1
            else:
                delay = result.retry_after or backoff_seconds(delivery.attempts)
                delivery.status = DeliveryStatus.RETRYING
                delivery.next_attempt_at = now + timedelta(seconds=delay)
                delivery.last_error = result.error
                retry_at.append(delivery.next_attempt_at)
        breakers.append((plan, successes, failures, consecutive, last_error))
    every = [d for plan in plans for d in plan.deliveries]
    delivered = [d.pk for d in every if d.status == DeliveryStatus.DELIVERED]
    others = [d for d in every if d.status != DeliveryStatus.DELIVERED]
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(attempts)
        if delivered:  # the common case, as one plain UPDATE
            Delivery.objects.filter(pk__in=delivered).update(
                status=DeliveryStatus.DELIVERED,
                attempts=F("attempts") + 1,
                delivered_at=now,
                lease_until=None,
                last_error="",
            )
        for delivery in others:
            delivery.lease_until = None
        if others:
            Delivery.objects.bulk_update(
                others,
                [
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "lease_until",
                    "dead_at",
                    "last_error",
                ],
            )
        _update_breakers(breakers, now)


def _bury(delivery: Delivery, now: datetime, error: str) -> None:
    delivery.status = DeliveryStatus.DEAD
    delivery.dead_at = now
    delivery.last_error = error[:500]


def _after_breaker(plan: ChannelPlan, result: Result, now: datetime) -> datetime:
    """When a delivery held back by the breaker is looked at again: after the open window
    (with jitter, so held deliveries do not return as one burst), or shortly while another
    worker's half-open probe is in flight."""
    if result.outcome == "deferred":
        return now + timedelta(seconds=HALF_OPEN_RECHECK_SECONDS)
    until = plan.health.opened_until if plan.mode == "fail_fast" else None
    until = until or now + timedelta(seconds=settings.ALERT_BREAKER_OPEN_SECONDS)
    return max(until, now) + timedelta(seconds=random.uniform(0, 1))


def _update_breakers(breakers: list[tuple[ChannelPlan, int, int, int, str]], now: datetime) -> None:
    """The channels of a batch that ended on a success are closed with one UPDATE; each other
    channel that made requests gets one of its own. Concurrent workers may interleave their
    counts; the breaker is a load shedder, so an approximate count is acceptable."""
    closed = [
        plan.health.pk
        for plan, successes, _, consecutive, _ in breakers
        if successes and consecutive == 0
    ]
    if closed:
        ChannelHealth.objects.filter(pk__in=closed).update(
            state=BreakerState.CLOSED,
            consecutive_failures=0,
            opened_until=None,
            probe_started_at=None,
            last_success_at=now,
        )
    for plan, successes, failures, consecutive, error in breakers:
        if (successes or failures) and plan.health.pk not in closed:
            _update_breaker(plan, successes, failures, consecutive, error, now)


def _update_breaker(
    plan: ChannelPlan, successes: int, failures: int, consecutive: int, error: str, now: datetime
) -> None:
    """A channel whose batch ended on a failure: count it, and open the breaker at the
    threshold (or when a half-open probe failed)."""
    threshold = settings.ALERT_BREAKER_FAILURE_THRESHOLD
    opens = plan.mode == "probe" or consecutive >= threshold
    changes = {
        "consecutive_failures": consecutive if successes else F("consecutive_failures") + failures,
        "last_failure_at": now,
        "last_error": error[:500],
    }
    if successes:
        changes["last_success_at"] = now
    if opens:
        changes.update(
            state=BreakerState.OPEN,
            opened_until=now + timedelta(seconds=settings.ALERT_BREAKER_OPEN_SECONDS),
            probe_started_at=None,
        )
        logger.warning("circuit breaker opened for channel %s", plan.health.channel_id)
    ChannelHealth.objects.filter(pk=plan.health.pk).update(**changes)


def _schedule_retries(retry_at: list[datetime]) -> None:
    """A fast path for retries (the beat sweeper `alerts.dispatch_due` is the safety net)."""
    if not retry_at:
        return
    from apps.alerts.tasks import deliver

    now = timezone.now()
    seconds = sorted({max(0, int((at - now).total_seconds()) + 1) for at in retry_at})
    for countdown in seconds[:20]:
        try:
            deliver.apply_async(countdown=countdown, retry=False)
        except Exception:
            logger.warning("could not schedule a retry; the sweeper will pick it up", exc_info=True)
            return
