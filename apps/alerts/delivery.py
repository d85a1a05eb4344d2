"""The delivery engine: claim due deliveries, send them, record every attempt.

- Claiming is one `SELECT … FOR UPDATE SKIP LOCKED` + UPDATE that leases rows to this worker, so
  any number of workers (and the beat sweeper) can run without sending a delivery twice at once.
  A worker that dies mid-send leaves an expired lease, and the row is claimed again: delivery is
  at-least-once, and the `Idempotency-Key` sent with every attempt lets receivers drop repeats.
- Each task takes up to BATCH_SIZE due deliveries, oldest first, so a backlog is drained in
  batches (fewer round trips) and no delivery waits behind newer ones.
- Channels are sent to in parallel threads (one per channel, a kept-alive HTTP connection each);
  within a channel requests go one after another, so the circuit breaker can stop a dead
  receiver after ALERT_BREAKER_FAILURE_THRESHOLD failures instead of after a whole batch.
  Threads do only I/O; every database read and write happens in the task's own thread.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.alerts import payloads
from apps.alerts.metrics import DELIVERIES, DELIVERY_LATENCY
from apps.alerts.models import (
    BreakerState,
    ChannelHealth,
    ChannelKind,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
)
from apps.alerts.validation import check_resolved_target

logger = logging.getLogger(__name__)

BATCH_SIZE = 50
HALF_OPEN_RECHECK_SECONDS = 1.0

_client: httpx.Client | None = None


def http_client() -> httpx.Client:
    """One pooled client per process: keep-alive connections to each receiver."""
    global _client
    if _client is None:
        _client = httpx.Client(
            timeout=settings.ALERT_DELIVERY_TIMEOUT_SECONDS,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
    return _client


@dataclass
class Result:
    outcome: str  # delivered | failed | rejected | breaker_open | deferred
    started_at: datetime
    duration_ms: int = 0
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None


def lease_seconds() -> float:
    timeout = settings.ALERT_DELIVERY_TIMEOUT_SECONDS
    return (settings.ALERT_BREAKER_FAILURE_THRESHOLD + 2) * timeout + 30


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random."""
    ceiling = min(
        settings.ALERT_RETRY_MAX_SECONDS, settings.ALERT_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _due(now: datetime) -> Q:
    waiting = Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
    stale = Q(status=DeliveryStatus.SENDING, lease_until__lt=now)
    return (waiting | stale) & Q(next_attempt_at__lte=now)


def claim(now: datetime, limit: int = BATCH_SIZE) -> list[Delivery]:
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
            status=DeliveryStatus.SENDING, lease_until=now + timedelta(seconds=lease_seconds())
        )
    return list(
        Delivery.objects.filter(pk__in=ids)
        .select_related("channel", "channel__tenant", "alert", "digest")
        .order_by("id")
    )


def deliver_due(limit: int = BATCH_SIZE) -> dict[str, int]:
    """Claim and send one batch. Returns counts by outcome."""
    now = timezone.now()
    batch = claim(now, limit)
    if not batch:
        return {}
    by_channel: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in batch:
        by_channel[delivery.channel_id].append(delivery)
    plans = [_plan(items, now) for items in by_channel.values()]
    with ThreadPoolExecutor(max_workers=min(8, len(plans))) as pool:
        outcomes = list(pool.map(_send_channel, plans))
    counts: dict[str, int] = defaultdict(int)
    retry_at: list[datetime] = []
    dead_tenants: set[int] = set()
    for plan, results in zip(plans, outcomes, strict=True):
        _record(plan, results, counts, retry_at, dead_tenants)
    _schedule_retries(retry_at)
    if dead_tenants:
        from apps.alerts.services import check_dead_letters

        for tenant_id in dead_tenants:
            check_dead_letters(tenant_id)
    return dict(counts)


@dataclass
class ChannelPlan:
    health: ChannelHealth
    deliveries: list[Delivery]
    outgoing: list[payloads.Outgoing | None]
    mode: str  # send | fail_fast | probe | defer
    failures_before: int


def _plan(deliveries: list[Delivery], now: datetime) -> ChannelPlan:
    channel = deliveries[0].channel
    health, _ = ChannelHealth.objects.get_or_create(
        channel=channel, defaults={"tenant_id": channel.tenant_id}
    )
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
    outgoing: list[payloads.Outgoing | None] = []
    for delivery in deliveries:
        if not channel.enabled:
            outgoing.append(payloads.Outgoing(kind=channel.kind, skip_reason="channel disabled"))
            continue
        if mode in ("fail_fast", "defer"):
            outgoing.append(None)
            continue
        try:
            outgoing.append(payloads.build(delivery))
        except Exception as exc:  # a broken secret or template must not stop the batch
            logger.exception("cannot build notification %s", delivery.pk)
            outgoing.append(
                payloads.Outgoing(kind=channel.kind, skip_reason=f"{type(exc).__name__}: {exc}")
            )
    return ChannelPlan(health, deliveries, outgoing, mode, health.consecutive_failures)


def _send_channel(plan: ChannelPlan) -> list[Result]:
    """Runs in a worker thread: network I/O only, no database access."""
    results: list[Result] = []
    failures = plan.failures_before
    threshold = settings.ALERT_BREAKER_FAILURE_THRESHOLD
    email_connection = None
    for index, outgoing in enumerate(plan.outgoing):
        started = timezone.now()
        if plan.mode == "defer" or (plan.mode == "probe" and index > 0):
            results.append(Result("deferred", started))
            continue
        if plan.mode == "fail_fast" or (failures >= threshold and plan.mode == "send"):
            results.append(Result("breaker_open", started, error="circuit breaker open"))
            continue
        if outgoing is None or outgoing.skip_reason:
            reason = outgoing.skip_reason if outgoing else "nothing to send"
            results.append(Result("rejected", started, error=reason))
            continue
        if outgoing.kind == ChannelKind.EMAIL:
            if email_connection is None:
                email_connection = get_connection(timeout=settings.ALERT_DELIVERY_TIMEOUT_SECONDS)
            result = _send_email(outgoing, started, email_connection)
        else:
            result = _send_http(outgoing, started)
        results.append(result)
        if result.outcome == "delivered":
            failures = 0
        else:
            failures += 1
            if plan.mode == "probe":
                failures = max(failures, threshold)
    if email_connection is not None:
        email_connection.close()
    return results


def _send_http(outgoing: payloads.Outgoing, started: datetime) -> Result:
    clock = time.monotonic()
    try:
        check_resolved_target(outgoing.url)
        response = http_client().post(outgoing.url, content=outgoing.body, headers=outgoing.headers)
    except PermissionError as exc:
        return Result("rejected", started, _ms(clock), error=str(exc)[:500])
    except (httpx.HTTPError, OSError) as exc:
        return Result("failed", started, _ms(clock), error=f"{type(exc).__name__}: {exc}"[:500])
    code = response.status_code
    if 200 <= code < 300:
        return Result("delivered", started, _ms(clock), status_code=code)
    error = f"HTTP {code}: {response.text[:300]}"
    if code in (408, 429) or code >= 500:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return Result("failed", started, _ms(clock), code, error, retry_after)
    return Result("rejected", started, _ms(clock), code, error)


def _send_email(outgoing: payloads.Outgoing, started: datetime, connection) -> Result:
    clock = time.monotonic()
    message = EmailMultiAlternatives(
        subject=outgoing.subject,
        body=outgoing.text,
        to=outgoing.to,
        headers=outgoing.headers,
        connection=connection,
    )
    if outgoing.html:
        message.attach_alternative(outgoing.html, "text/html")
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # smtplib and socket errors: retried
        return Result("failed", started, _ms(clock), error=f"{type(exc).__name__}: {exc}"[:500])
    return Result("delivered", started, _ms(clock))


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), settings.ALERT_RETRY_MAX_SECONDS) if value else None
    except ValueError:
        return None


def _ms(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)


def _record(
    plan: ChannelPlan,
    results: list[Result],
    counts: dict[str, int],
    retry_at: list[datetime],
    dead_tenants: set[int],
) -> None:
    now = timezone.now()
    attempts: list[DeliveryAttempt] = []
    kind = plan.deliveries[0].channel.kind
    successes = failures = 0
    consecutive = plan.failures_before
    last_error = ""
    give_up = timedelta(seconds=settings.ALERT_DELIVERY_GIVE_UP_SECONDS)
    for delivery, result in zip(plan.deliveries, results, strict=True):
        counts[result.outcome] += 1
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
    delivered = [d.pk for d in plan.deliveries if d.status == DeliveryStatus.DELIVERED]
    others = [d for d in plan.deliveries if d.status != DeliveryStatus.DELIVERED]
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
        _update_breaker(plan, successes, failures, consecutive, last_error, now)


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


def _update_breaker(
    plan: ChannelPlan, successes: int, failures: int, consecutive: int, error: str, now: datetime
) -> None:
    """One UPDATE per channel and batch. Concurrent workers may interleave their counts; the
    breaker is a load shedder, so an approximate count is acceptable."""
    health = ChannelHealth.objects.filter(pk=plan.health.pk)
    if not successes and not failures:
        return
    threshold = settings.ALERT_BREAKER_FAILURE_THRESHOLD
    if successes and consecutive == 0:
        health.update(
            state=BreakerState.CLOSED,
            consecutive_failures=0,
            opened_until=None,
            probe_started_at=None,
            last_success_at=now,
        )
        return
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
    health.update(**changes)


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
