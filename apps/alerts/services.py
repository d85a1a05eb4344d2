"""Writes for alerts: the entry point other apps call (`raise_alert`, `resolve_alert`, and
`raise_alerts` for many at once, in `apps.alerts.bulk`), acknowledgement, channels, the
dead-letter queue, and the per-minute `tick` (escalations, batches, summaries) that beat runs
for every tenant.

Every notification is a `Delivery` row written in the same transaction as the change that caused
it, and handed to Celery through the outbox (`apps.core.services.enqueue`): if the broker is
down, the alert is still recorded and its deliveries go out when the outbox drains.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.alerts import links, policies
from apps.alerts.metrics import ALERTS_DEDUPLICATED, ALERTS_RAISED
from apps.alerts.models import (
    Alert,
    AlertStatus,
    Channel,
    ChannelHealth,
    ChannelKind,
    Delivery,
    DeliveryMode,
    DeliveryStatus,
    Digest,
    DigestKind,
    NotifyState,
    Policy,
    Purpose,
    Tier,
)
from apps.alerts.validation import validate_channel
from apps.audit.services import record_event
from apps.core.services import enqueue
from apps.tenancy.models import Tenant
from opsportal import crypto

logger = logging.getLogger(__name__)

DLQ_SOURCE = "alerts.dlq"
DLQ_DEDUP_KEY = "alerts.dlq.size"
FIELD_LIMITS = {"source": 64, "dedup_key": 200, "title": 200}
TITLE_LIMIT = FIELD_LIMITS["title"]


class InvalidTransition(Exception):
    def __init__(self, alert: Alert, action: str):
        self.allowed = [a for a, ok in _ALLOWED.items() if alert.status in ok]
        super().__init__(
            f"Cannot {action} an alert that is {alert.status}; "
            f"allowed: {', '.join(self.allowed) or 'nothing'}."
        )


_ALLOWED = {
    "acknowledge": (AlertStatus.FIRING, AlertStatus.ACKNOWLEDGED),
    "resolve": (AlertStatus.FIRING, AlertStatus.ACKNOWLEDGED),
}


@dataclass
class RaiseResult:
    alert: Alert
    created: bool
    deliveries: int


def _validate(tier: Any, fields: dict[str, str]) -> int:
    errors: dict[str, str] = {}
    try:
        tier = int(tier)
    except (TypeError, ValueError):
        tier = None
    if tier not in Tier.values:
        errors["tier"] = f"Unknown tier; use one of {', '.join(map(str, Tier.values))}."
    for name, limit in FIELD_LIMITS.items():
        value = fields.get(name) or ""
        if not value.strip():
            errors[name] = "This field is required."
        elif len(value) > limit:
            errors[name] = f"At most {limit} characters."
    if errors:
        raise ValidationError(errors)
    return tier


def raise_alert(
    tenant: Tenant,
    source: str,
    tier: int,
    dedup_key: str,
    title: str,
    summary: str = "",
    details: dict | None = None,
    links: list | None = None,
    *,
    only_kinds: list[str] | None = None,
    now: datetime | None = None,
) -> RaiseResult:
    """Record that something is wrong. A firing alert with the same dedup key is updated
    (count, last seen) instead of notified again, unless its policy's dedup window has passed
    without an acknowledgement, which sends a repeat."""
    spec = AlertSpec.clean(source, tier, dedup_key, title, summary, details, links, only_kinds)
    now = now or timezone.now()
    policy = policies.policy_for(tenant, spec.tier)
    with transaction.atomic():
        return _raise_one(tenant, spec, policy, now)


def raise_alerts(
    tenant: Tenant, alerts: Iterable[Mapping[str, Any]], *, now: datetime | None = None
) -> list[RaiseResult]:
    """Raise many alerts of one tenant in one transaction, each given as the keyword arguments
    of `raise_alert` (source, tier, dedup_key, title, summary, details, links, only_kinds).
    Returns one result per alert, in order, each what `raise_alert` would have returned had it
    been called for the alerts one after another. All or nothing: bad input in any alert raises
    a ValidationError naming it ("<index>.<field>") before anything is written. See
    `apps.alerts.bulk`."""
    from apps.alerts import bulk

    return bulk.raise_alerts(tenant, alerts, now=now)


@dataclass
class AlertSpec:
    """One alert to raise, validated: what `raise_alert` and `raise_alerts` take."""

    source: str
    tier: int
    dedup_key: str
    title: str
    summary: str = ""
    details: dict | None = None
    links: list | None = None
    only_kinds: list[str] | None = None

    @classmethod
    def clean(
        cls,
        source: str,
        tier: Any,
        dedup_key: str,
        title: str,
        summary: str = "",
        details: dict | None = None,
        links: list | None = None,
        only_kinds: list[str] | None = None,
    ) -> AlertSpec:
        if title and len(title) > TITLE_LIMIT:  # a long title must not cost the alert
            title = title[: TITLE_LIMIT - 1] + "…"
        tier = _validate(tier, {"source": source, "dedup_key": dedup_key, "title": title})
        return cls(source, tier, dedup_key, title, summary, details, links, only_kinds)

    def latest(self) -> dict[str, Any]:
        """What a raise of an open key updates on it (when given)."""
        return {
            "title": self.title,
            "summary": self.summary,
            "details": self.details,
            "links": self.links,
        }


def _raise_one(tenant: Tenant, spec: AlertSpec, policy: Policy, now: datetime) -> RaiseResult:
    """raise_alert's work, inside the caller's transaction."""
    for _ in range(3):
        existing = (
            Alert.objects.for_tenant(tenant)
            .select_for_update()
            .filter(dedup_key=spec.dedup_key)
            .exclude(status=AlertStatus.RESOLVED)
            .first()
        )
        if existing is not None:
            return _repeat(existing, policy, now, spec.latest())
        try:
            with transaction.atomic():
                alert = new_alert(tenant, spec, policy, now)
                alert.save(audit_action="alert.raised")
        except IntegrityError:
            continue  # raised concurrently with the same key: fold into the winner
        ALERTS_RAISED.labels(str(spec.tier), spec.source).inc()
        return RaiseResult(alert, True, _first_notification(alert, policy, now))
    raise RuntimeError("could not raise or deduplicate the alert")


def new_alert(tenant: Tenant, spec: AlertSpec, policy: Policy, now: datetime) -> Alert:
    """The row a first raise of a key inserts (not saved)."""
    # The usual tier-1 case is notified at once: record it so in the INSERT itself.
    at_once = notified_at_once(policy)
    return Alert(
        tenant=tenant,
        source=spec.source,
        tier=spec.tier,
        dedup_key=spec.dedup_key,
        title=spec.title,
        summary=spec.summary or "",
        details=spec.details or {},
        links=spec.links or [],
        only_kinds=spec.only_kinds or [],
        notify_state=NotifyState.NOTIFIED if at_once else NotifyState.WAITING,
        first_notified_at=now if at_once else None,
        last_notified_at=now if at_once else None,
        first_seen_at=now,
        last_seen_at=now,
    )


def notified_at_once(policy: Policy) -> bool:
    return policy.mode == DeliveryMode.IMMEDIATE and policy.threshold_count <= 1


def _repeat(alert: Alert, policy: Policy, now: datetime, latest: dict[str, Any]) -> RaiseResult:
    """A raise of a firing key: count it, and keep the latest title, summary and details (like
    Alertmanager's annotations) so the alert shows the current state, e.g. the DLQ size."""
    latest = {k: v for k, v in latest.items() if v}
    Alert._base_manager.filter(pk=alert.pk).update(count=F("count") + 1, last_seen_at=now, **latest)
    alert.count += 1
    alert.last_seen_at = now
    for name, value in latest.items():
        setattr(alert, name, value)
    ALERTS_DEDUPLICATED.labels(str(alert.tier)).inc()
    window = timedelta(minutes=policy.dedup_window_minutes)
    due = (
        alert.status == AlertStatus.FIRING
        and policy.mode == DeliveryMode.IMMEDIATE
        and alert.notify_state == NotifyState.NOTIFIED
        and alert.last_notified_at is not None
        and now - alert.last_notified_at >= window
    )
    if not due:
        return RaiseResult(alert, False, 0)
    sent = notify(alert, Purpose.REPEAT, kinds=kinds_for(alert, policy))
    alert.last_notified_at = now
    alert.version += 1
    alert.save(audit_action="alert.repeated")
    return RaiseResult(alert, False, sent)


def _first_notification(alert: Alert, policy: Policy, now: datetime) -> int:
    if policy.threshold_count > 1:
        window_start = now - timedelta(minutes=policy.threshold_window_minutes)
        recent = Alert.objects.for_tenant(alert.tenant_id).filter(
            tier=alert.tier, first_seen_at__gte=window_start
        )
        if recent.count() < policy.threshold_count:
            Alert._base_manager.filter(pk=alert.pk).update(notify_state=NotifyState.BELOW_THRESHOLD)
            alert.notify_state = NotifyState.BELOW_THRESHOLD
            return 0
        held = list(
            recent.filter(notify_state=NotifyState.BELOW_THRESHOLD, status=AlertStatus.FIRING)
        )
    else:
        held = []
    if policy.mode != DeliveryMode.IMMEDIATE:
        for waiting in held:
            waiting.notify_state = NotifyState.WAITING
            waiting.save(audit_action="alert.threshold_reached")
        return 0
    sent = 0
    for item in [*held, alert]:
        sent += notify(item, Purpose.TRIGGER, kinds=kinds_for(item, policy))
        if item.notify_state != NotifyState.NOTIFIED:
            item.notify_state = NotifyState.NOTIFIED
            item.first_notified_at = item.last_notified_at = now
            Alert._base_manager.filter(pk=item.pk).update(
                notify_state=NotifyState.NOTIFIED, first_notified_at=now, last_notified_at=now
            )
    return sent


def kinds_for(alert: Alert, policy: Policy) -> list[str]:
    kinds = list(policy.channel_kinds)
    if alert.only_kinds:
        kinds = [k for k in kinds if k in alert.only_kinds] or list(alert.only_kinds)
    return kinds


def notify(
    alert: Alert | None,
    purpose: str,
    *,
    kinds: list[str] | None = None,
    channels: list[Channel] | None = None,
    digest: Digest | None = None,
    tenant_id: int | None = None,
) -> int:
    """Create one delivery per channel and hand them to the worker after commit."""
    tenant_id = tenant_id or (alert.tenant_id if alert else digest.tenant_id)
    if channels is None:
        channels = channels_for(tenant_id, kinds)
    if not channels:
        return 0
    rows = Delivery.objects.bulk_create(
        delivery_rows(tenant_id, channels, purpose, timezone.now(), alert=alert, digest=digest)
    )
    enqueue("alerts.deliver", delivery_ids=[row.pk for row in rows])
    return len(rows)


def channels_for(tenant_id: int, kinds: list[str] | None) -> list[Channel]:
    """The tenant's enabled channels of these kinds."""
    return list(Channel.objects.for_tenant(tenant_id).filter(enabled=True, kind__in=kinds or []))


def delivery_rows(
    tenant_id: int,
    channels: list[Channel],
    purpose: str,
    now: datetime,
    *,
    alert: Alert | None = None,
    digest: Digest | None = None,
) -> list[Delivery]:
    """One new delivery per channel (not saved), due now."""
    return [
        Delivery(
            tenant_id=tenant_id,
            channel=channel,
            alert=alert,
            digest=digest,
            purpose=purpose,
            next_attempt_at=now,
            created_at=now,
            queued_at=now,
        )
        for channel in channels
    ]


def _channels_that_got(alert: Alert, kinds: tuple[str, ...]) -> list[Channel]:
    ids = (
        Delivery.objects.for_tenant(alert.tenant_id)
        .filter(alert=alert, purpose=Purpose.TRIGGER, channel__kind__in=kinds)
        .values_list("channel_id", flat=True)
    )
    return list(Channel.objects.for_tenant(alert.tenant_id).filter(pk__in=ids, enabled=True))


def acknowledge_alert(alert: Alert, by: str) -> Alert:
    """Stops escalation and repeats; PagerDuty and webhooks are told."""
    return _transition(alert, by, "acknowledge", AlertStatus.ACKNOWLEDGED, Purpose.ACKNOWLEDGE)


def close_alert(alert: Alert, by: str) -> Alert:
    return _transition(alert, by, "resolve", AlertStatus.RESOLVED, Purpose.RESOLVE)


def _transition(alert: Alert, by: str, action: str, status: str, purpose: str) -> Alert:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status not in _ALLOWED[action]:
            raise InvalidTransition(alert, action)
        if alert.status == status:
            return alert
        now = timezone.now()
        alert.status = status
        if status == AlertStatus.ACKNOWLEDGED:
            alert.acknowledged_at, alert.acknowledged_by = now, by[:200]
        else:
            alert.resolved_at, alert.resolved_by = now, by[:200]
        alert.version += 1
        alert.save(audit_action=f"alert.{status}")
        notify(
            alert,
            purpose,
            channels=_channels_that_got(alert, (ChannelKind.PAGERDUTY, ChannelKind.WEBHOOK)),
        )
    return alert


def resolve_alert(tenant: Tenant, dedup_key: str, by: str = "system") -> Alert | None:
    """Resolve the open alert with this dedup key, if any (other apps call this when the
    condition clears; resolving twice is harmless)."""
    alert = (
        Alert.objects.for_tenant(tenant)
        .filter(dedup_key=dedup_key)
        .exclude(status=AlertStatus.RESOLVED)
        .first()
    )
    return close_alert(alert, by) if alert else None


def acknowledge_by_link(token: str) -> Alert:
    """Use a signed ack link once. Raises links.LinkError (tampered, expired, used)."""
    with transaction.atomic():
        link = links.read(token)
        link.use()
        if link.alert.status == AlertStatus.RESOLVED:
            return link.alert
        return acknowledge_alert(link.alert, by="ack link")


# --- channels -------------------------------------------------------------------------------


def save_channel(channel: Channel, *, secret: str = "") -> tuple[Channel, str]:
    """Validate and save a channel; a new secret is encrypted and only its hint kept.

    A webhook channel without a signing secret gets a generated one, returned here so it can be
    shown exactly once. Returns (channel, secret to show once or "")."""
    secret = (secret or "").strip()
    generated = ""
    if channel.kind == ChannelKind.WEBHOOK and not secret and not channel.secret_ciphertext:
        secret = generated = secrets.token_urlsafe(32)
    validate_channel(
        channel.kind,
        url=channel.url,
        emails=channel.emails,
        secret=secret,
        has_secret=bool(channel.secret_ciphertext),
    )
    if secret:
        channel.secret_ciphertext = crypto.encrypt(secret)
        channel.secret_hint = crypto.hint(secret)
    with transaction.atomic():
        if channel.pk:
            channel.version = F("version") + 1
        channel.save(audit_action="channel.saved")
        channel.refresh_from_db(fields=["version"])
        ChannelHealth.objects.get_or_create(channel=channel, defaults={"tenant": channel.tenant})
    return channel, generated


def send_test(channel: Channel) -> int:
    with transaction.atomic():
        record_event(
            tenant_id=channel.tenant_id, action="channel.test_sent", target=channel, after={}
        )
        return notify(None, Purpose.TEST, channels=[channel], tenant_id=channel.tenant_id)


# --- dead-letter queue ----------------------------------------------------------------------


def requeue_dead_letters(
    tenant: Tenant | None, *, ids: list[int] | None = None, channel_id: int | None = None
) -> int:
    """Send dead deliveries again with a fresh attempt budget. The channels involved get a
    half-open probe right away: whoever requeues says the receiver is back."""
    now = timezone.now()
    with transaction.atomic():
        dead = Delivery.objects.dead()
        if tenant is not None:
            dead = dead.for_tenant(tenant)
        if ids is not None:
            dead = dead.filter(pk__in=ids)
        if channel_id is not None:
            dead = dead.filter(channel_id=channel_id)
        rows = list(dead.select_for_update().values_list("pk", "channel_id", "tenant_id"))
        if not rows:
            return 0
        pks = [r[0] for r in rows]
        Delivery.objects.filter(pk__in=pks).update(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            queued_at=now,
            dead_at=None,
            last_error="",
            requeued_count=F("requeued_count") + 1,
        )
        ChannelHealth.objects.filter(
            channel_id__in={r[1] for r in rows}, state="open", opened_until__gt=now
        ).update(opened_until=now)
        for tenant_id in sorted({r[2] for r in rows}):
            mine = [r[0] for r in rows if r[2] == tenant_id]
            record_event(
                tenant_id=tenant_id,
                action="alerts.dlq_requeued",
                target_type="alerts.delivery",
                after={"count": len(mine), "ids": mine[:100]},
            )
        for start in range(0, len(pks), 200):
            enqueue("alerts.deliver", delivery_ids=pks[start : start + 200])
    return len(pks)


def check_dead_letters(tenant_id: int) -> None:
    """A DLQ past its threshold raises its own tier-1 alert, by email only (the dead channel
    may well be Slack); back under it, the alert resolves."""
    from django.conf import settings

    tenant = Tenant.objects.get(pk=tenant_id)
    size = Delivery.objects.for_tenant(tenant).dead().count()
    if size >= settings.ALERT_DLQ_ALERT_THRESHOLD:
        raise_alert(
            tenant,
            DLQ_SOURCE,
            Tier.CRITICAL,
            DLQ_DEDUP_KEY,
            f"{size} alert deliveries are in the dead-letter queue",
            "Notifications could not be delivered after every retry. See the alert response "
            "runbook: fix the channel, then requeue from the DLQ page.",
            {"dlq_size": size},
            [{"href": "/admin/alerts/deadletter/", "text": "Dead-letter queue"}],
            only_kinds=[ChannelKind.EMAIL],
        )
    else:
        resolve_alert(tenant, DLQ_DEDUP_KEY)


# --- the per-minute tick --------------------------------------------------------------------


def tick(tenant: Tenant, now: datetime | None = None) -> dict[str, int]:
    """Escalations, batches and summaries that are due for one tenant at `now`."""
    now = now or timezone.now()
    zone = policies.local_zone(tenant)
    done = {"escalated": 0, "batches": 0, "summaries": 0}
    for policy in policies.ensure_default_policies(tenant):
        with transaction.atomic():
            done["escalated"] += _escalate(tenant, policy, now, zone)
            done["batches"] += _batch(tenant, policy, now, zone)
            done["summaries"] += _summary(tenant, policy, now, zone)
    with transaction.atomic():
        check_dead_letters(tenant.pk)  # also resolves the DLQ alert once a requeue drained it
    return done


def _escalate(tenant: Tenant, policy: Policy, now: datetime, zone) -> int:
    if policy.escalate_after_minutes is None:
        return 0
    if policy.quiet_hours and not policies.in_business_hours(policy, now, zone):
        return 0
    cutoff = now - timedelta(minutes=policy.escalate_after_minutes)
    due = list(
        Alert.objects.for_tenant(tenant)
        .select_for_update(skip_locked=True)
        .filter(
            tier=policy.tier,
            status=AlertStatus.FIRING,
            escalated_at__isnull=True,
            first_notified_at__lte=cutoff,
        )
    )
    if not due:
        return 0
    channels = list(policy.escalation_channels.filter(enabled=True))
    for alert in due:
        notify(alert, Purpose.ESCALATION, channels=channels)
        alert.escalated_at = now
        alert.version += 1
        alert.save(audit_action="alert.escalated")
    return len(due)


def _batch(tenant: Tenant, policy: Policy, now: datetime, zone) -> int:
    if policy.mode != DeliveryMode.BATCHED:
        return 0
    if policy.quiet_hours and not policies.in_business_hours(policy, now, zone):
        return 0
    waiting = Alert.objects.for_tenant(tenant).filter(
        tier=policy.tier, status=AlertStatus.FIRING, notify_state=NotifyState.WAITING
    )
    if not waiting.exists():
        return 0
    batches = Digest.objects.for_tenant(tenant).filter(tier=policy.tier, kind=DigestKind.BATCH)
    last = batches.order_by("-created_at").values_list("created_at", flat=True).first()
    if last and now - last < timedelta(minutes=policy.batch_interval_minutes):
        return 0
    local = now.astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if batches.filter(created_at__gte=day_start).count() >= policy.max_batches_per_day:
        return 0
    alerts = list(waiting.select_for_update(skip_locked=True))
    key = local.strftime("%Y-%m-%dT%H:%M")
    return _send_digest(tenant, policy, DigestKind.BATCH, key, alerts, now)


def _summary(tenant: Tenant, policy: Policy, now: datetime, zone) -> int:
    key, scheduled = policies.summary_due(policy, now, zone)
    if not key:
        return 0
    kind = DigestKind.WEEKLY if policy.summary_cadence == "weekly" else DigestKind.DAILY
    if Digest.objects.for_tenant(tenant).filter(tier=policy.tier, kind=kind, period_key=key):
        return 0
    start, end = policies.summary_period(policy, scheduled)
    alerts = list(
        Alert.objects.for_tenant(tenant).filter(
            tier=policy.tier, first_seen_at__gte=start, first_seen_at__lt=end
        )
    )
    if len(alerts) < max(1, policy.summary_min_count):
        _create_digest(tenant, policy, kind, key, [], now, skipped=len(alerts))
        return 0
    return _send_digest(tenant, policy, kind, key, alerts, now)


def _create_digest(tenant, policy, kind, key, alerts, now, skipped=None) -> Digest | None:
    figures: dict[str, Any] = {"alerts": len(alerts)}
    if skipped is not None:
        figures = {"alerts": skipped, "skipped": "below the policy's minimum"}
    else:
        figures["firing"] = sum(1 for a in alerts if a.status == AlertStatus.FIRING)
        figures["by_source"] = {}
        for alert in alerts:
            figures["by_source"][alert.source] = figures["by_source"].get(alert.source, 0) + 1
    try:
        with transaction.atomic():
            digest = Digest.objects.create(
                tenant=tenant,
                tier=policy.tier,
                kind=kind,
                period_key=key,
                figures=figures,
                created_at=now,
            )
    except IntegrityError:
        return None  # another tick made it
    if alerts:
        digest.alerts.set(alerts)
    return digest


def _send_digest(tenant, policy, kind, key, alerts, now) -> int:
    digest = _create_digest(tenant, policy, kind, key, alerts, now)
    if digest is None:
        return 0
    Alert._base_manager.filter(
        Q(pk__in=[a.pk for a in alerts]) & ~Q(notify_state=NotifyState.NOTIFIED)
    ).update(notify_state=NotifyState.NOTIFIED, first_notified_at=now, last_notified_at=now)
    notify(None, Purpose.DIGEST, kinds=list(policy.channel_kinds), digest=digest)
    record_event(
        tenant_id=tenant.pk,
        action=f"alerts.{kind}_sent",
        target=digest,
        after={"tier": policy.tier, "period": key, "alerts": len(alerts)},
    )
    return 1


def send_report(
    tenant: Tenant, period_key: str, figures: dict[str, Any], kinds: list[str]
) -> Digest | None:
    """Send a report (e.g. the daily SLO report) to the tenant's channels of these kinds, once
    per period key: a second call for the same key sends nothing and returns None."""
    try:
        with transaction.atomic():
            digest = Digest.objects.create(
                tenant=tenant,
                tier=Tier.HIGH,
                kind=DigestKind.REPORT,
                period_key=period_key[:40],
                figures=figures,
            )
    except IntegrityError:
        return None
    deliveries = notify(None, Purpose.DIGEST, kinds=kinds, digest=digest)
    record_event(
        tenant_id=tenant.pk,
        action="alerts.report_sent",
        target=digest,
        after={"period": period_key, "deliveries": deliveries},
    )
    return digest


def rotate_channel_secrets() -> int:
    """Re-encrypt every channel secret with the current key; all or nothing."""
    with transaction.atomic():
        channels = list(
            Channel.objects.select_for_update()
            .exclude(secret_ciphertext="")
            .only("pk", "tenant_id", "secret_ciphertext")
        )
        for channel in channels:
            Channel._base_manager.filter(pk=channel.pk).update(
                secret_ciphertext=crypto.reencrypt(channel.secret_ciphertext)
            )
        record_event(
            tenant_id=None,
            action="secrets.rotated",
            target_type="alerts.channel",
            after={"channels": len(channels)},
        )
    return len(channels)
