"""Sending a claimed batch (`apps.alerts.delivery`): which channels go out one after another in
the task's own thread and which in threads, the requests themselves, and their outcomes.

Within a channel requests go one after another, so the circuit breaker can stop a dead receiver
after ALERT_BREAKER_FAILURE_THRESHOLD failures instead of after a whole batch. Channels whose
receiver has been answering fast (FAST_STREAK requests in a row, each within FAST_RECEIVER_MS, in
this process) are sent to one after another in the task's own thread; the others (new, slow,
failing) each get a thread of their own, so a slow or dead receiver delays only its own channel.
A fast channel that turns slow or fails mid-batch hands the rest of its batch, and the fast
channels still waiting, to threads. A batch for a single channel is always sent in the task's
thread. Everything here is network I/O, no database access: the plans are built before, and the
results recorded after, in the task's own thread. HTTP goes over `apps.alerts.transport`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils import timezone

from apps.alerts import payloads, transport
from apps.alerts.models import ChannelKind
from apps.alerts.validation import check_resolved_target

if TYPE_CHECKING:
    from apps.alerts.delivery import ChannelPlan

# A receiver is "fast" after FAST_STREAK successful requests in a row from this process, each
# answered within FAST_RECEIVER_MS; its channel is then sent to in the task's own thread. On two
# vCPUs, a request made in one of several sending threads costs several times the CPU of the
# same request made sequentially (the threads contend for the GIL), so threads only pay off for
# receivers that keep the sender waiting longer than that: a few milliseconds.
FAST_RECEIVER_MS = 5
FAST_STREAK = 5

_client: httpx.Client | None = None
_pool: transport.Pool | bool | None = None  # False: send through httpx (a proxy is configured)
_pool_lock = threading.Lock()
_fast_streak: dict[int, int] = {}  # channel id -> fast successful requests in a row (this process)


def _post(url: str, body: bytes, headers: dict[str, str]):
    """One POST over the process's kept-alive connections (`apps.alerts.transport`), or through
    httpx where the environment configures a proxy. Returns a response with `status_code`,
    `headers` (lower-case names work) and `text`."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = (
                    False
                    if transport.proxied()
                    else transport.Pool(settings.ALERT_DELIVERY_TIMEOUT_SECONDS)
                )
    if _pool is False:
        return http_client().post(url, content=body, headers=headers)
    return _pool.post(url, body, headers)


def http_client() -> httpx.Client:
    """One pooled httpx client per process (used where a proxy is configured)."""
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
    outcome: str  # delivered | failed | rejected | breaker_open | deferred | released
    started_at: datetime
    duration_ms: int = 0
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None


@dataclass
class Sending:
    """One channel's batch being sent: the results so far, so a send that is handed from the
    task's thread to a sending thread carries on where it stopped."""

    plan: ChannelPlan
    deadline: float  # time.monotonic() after which no request starts (see send_deadline)
    results: list[Result] = field(default_factory=list)
    failures: int = 0
    email_connection: object | None = None

    def __post_init__(self) -> None:
        self.failures = self.plan.failures_before

    @property
    def channel_id(self) -> int:
        return self.plan.health.channel_id

    def makes_requests(self) -> bool:
        if self.plan.mode in ("fail_fast", "defer"):
            return False
        return any(o is not None and not o.skip_reason for o in self.plan.outgoing)


def is_fast(channel_id: int) -> bool:
    """Whether this channel's receiver has been answering fast (see FAST_RECEIVER_MS)."""
    return _fast_streak.get(channel_id, 0) >= FAST_STREAK


def _note_pace(channel_id: int, result: Result) -> bool:
    """Track how fast a receiver answers; returns whether this request was fast."""
    fast = result.outcome == "delivered" and result.duration_ms <= FAST_RECEIVER_MS
    _fast_streak[channel_id] = _fast_streak.get(channel_id, 0) + 1 if fast else 0
    return fast


def send_all(plans: list[ChannelPlan], deadline: float) -> list[list[Result]]:
    """Send every channel's batch: fast receivers one after another in this thread, the others
    in a thread each (see the module docstring); no request starts after `deadline`
    (time.monotonic()). Returns the results per plan."""
    sendings = [Sending(plan, deadline) for plan in plans]
    busy = [s for s in sendings if s.makes_requests()]
    # With one channel to send to, there is no other channel a slow receiver could hold up.
    inline = busy if len(busy) <= 1 else [s for s in busy if is_fast(s.channel_id)]
    threaded = [s for s in busy if s not in inline]
    for sending in sendings:
        if sending not in busy:
            _send_channel(sending)  # no request to make: answered at once
    pool = ThreadPoolExecutor(max_workers=min(8, len(busy))) if threaded else None
    try:
        futures = [pool.submit(_send_channel, s) for s in threaded] if pool else []
        for index, sending in enumerate(inline):
            waiting = inline[index + 1 :]
            if _send_channel(sending, stop_when_slow=bool(waiting)):
                continue
            # This receiver turned slow or failed: it and the channels still waiting get
            # threads, so they do not queue behind it.
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=min(8, 1 + len(waiting)))
            futures += [pool.submit(_send_channel, s) for s in [sending, *waiting]]
            break
        for future in futures:
            future.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return [s.results for s in sendings]


def _send_channel(sending: Sending, *, stop_when_slow: bool = False) -> bool:
    """Send (the rest of) one channel's batch, one request after another: network I/O only, no
    database access (it may run in a sending thread). With `stop_when_slow`, it returns False
    right after a request that was slow or failed, with the rest still to send."""
    plan = sending.plan
    threshold = settings.ALERT_BREAKER_FAILURE_THRESHOLD
    try:
        for index in range(len(sending.results), len(plan.outgoing)):
            outgoing = plan.outgoing[index]
            started = timezone.now()
            if plan.mode == "defer" or (plan.mode == "probe" and index > 0):
                sending.results.append(Result("deferred", started))
                continue
            if plan.mode == "fail_fast" or (sending.failures >= threshold and plan.mode == "send"):
                sending.results.append(
                    Result("breaker_open", started, error="circuit breaker open")
                )
                continue
            if outgoing is None or outgoing.skip_reason:
                reason = outgoing.skip_reason if outgoing else "nothing to send"
                sending.results.append(Result("rejected", started, error=reason))
                continue
            if time.monotonic() >= sending.deadline:
                sending.results.append(Result("released", started))
                continue
            if outgoing.kind == ChannelKind.EMAIL:
                if sending.email_connection is None:
                    sending.email_connection = get_connection(
                        timeout=settings.ALERT_DELIVERY_TIMEOUT_SECONDS
                    )
                result = _send_email(outgoing, started, sending.email_connection)
            else:
                result = _send_http(outgoing, started)
            sending.results.append(result)
            fast = _note_pace(sending.channel_id, result)
            if result.outcome == "delivered":
                sending.failures = 0
            else:
                sending.failures += 1
                if plan.mode == "probe":
                    sending.failures = max(sending.failures, threshold)
            if stop_when_slow and not fast and index + 1 < len(plan.outgoing):
                return False
    except BaseException:
        _close_email(sending)
        raise
    _close_email(sending)
    return True


def _close_email(sending: Sending) -> None:
    if sending.email_connection is not None:
        sending.email_connection.close()
        sending.email_connection = None


def _send_http(outgoing: payloads.Outgoing, started: datetime) -> Result:
    clock = time.monotonic()
    try:
        check_resolved_target(outgoing.url)
        response = _post(outgoing.url, outgoing.body, outgoing.headers)
    except PermissionError as exc:
        return Result("rejected", started, _ms(clock), error=str(exc)[:500])
    except (httpx.HTTPError, *transport.ERRORS) as exc:
        return Result("failed", started, _ms(clock), error=f"{type(exc).__name__}: {exc}"[:500])
    code = response.status_code
    if 200 <= code < 300:
        return Result("delivered", started, _ms(clock), status_code=code)
    error = f"HTTP {code}: {response.text[:300]}"
    if code in (408, 429) or code >= 500:
        retry_after = _retry_after(response.headers.get("retry-after"))
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
