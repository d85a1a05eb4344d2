"""Alerts: channels, per-tier policies, alerts with dedup, digests, and deliveries with history.

Design (docs/architecture.md, "Alerts"): an alert is one row per (tenant, dedup key) while it is
open; raising it again only bumps `count` and `last_seen_at`. Notifications are `Delivery` rows,
one per alert (or digest) x channel x purpose, each with its attempt history; the delivery engine
(`apps.alerts.delivery`) sends them with retries, a per-channel circuit breaker and a dead-letter
state. Channel secrets are stored encrypted (`opsportal.crypto`) and never shown again.
"""

from __future__ import annotations

import uuid
from datetime import time

from django.db import models
from django.utils import timezone

from apps.audit.models import AuditedModel
from apps.tenancy.scoping import TenantOwned, TenantQuerySet


class Tier(models.IntegerChoices):
    CRITICAL = 1, "Tier 1 (critical)"
    HIGH = 2, "Tier 2 (batched)"
    LOW = 3, "Tier 3 (weekly summary)"


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    EMAIL = "email", "Email"
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
    WEBHOOK = "webhook", "Signed webhook"


class Channel(AuditedModel, TenantOwned):
    """Where notifications go. The secret (Slack webhook URL, PagerDuty routing key, webhook
    signing secret) is stored encrypted; only `secret_hint` is ever displayed."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Webhook: the receiver URL. PagerDuty: leave blank for the public Events API.",
    )
    emails = models.TextField(
        blank=True, help_text="Email: recipients, separated by commas or new lines."
    )
    secret_ciphertext = models.TextField(blank=True, editable=False)
    secret_hint = models.CharField(max_length=16, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=1)

    audit_fields = ("name", "kind", "url", "emails", "secret_hint", "enabled")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="alert_channel_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def recipients(self) -> list[str]:
        return [a.strip() for a in self.emails.replace("\n", ",").split(",") if a.strip()]


class BreakerState(models.TextChoices):
    CLOSED = "closed", "closed"
    OPEN = "open", "open"
    HALF_OPEN = "half_open", "half-open"


class ChannelHealth(TenantOwned):
    """Circuit-breaker state and delivery figures of one channel. Not audited: it changes on
    every delivery and is derived from the attempt history."""

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="health")
    state = models.CharField(
        max_length=16, choices=BreakerState.choices, default=BreakerState.CLOSED
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_until = models.DateTimeField(null=True, blank=True)
    probe_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.channel_id} {self.state}"


class DeliveryMode(models.TextChoices):
    IMMEDIATE = "immediate", "immediately"
    BATCHED = "batched", "hourly batches (business hours)"
    SUMMARY = "summary", "summary only"


class SummaryCadence(models.TextChoices):
    NONE = "none", "none"
    DAILY = "daily", "daily"
    WEEKLY = "weekly", "weekly"


def _weekdays() -> list[int]:
    return [0, 1, 2, 3, 4]


class Policy(AuditedModel, TenantOwned):
    """How one tier is routed in one tenant. Defaults follow the operating plan (see
    `apps.alerts.policies.DEFAULTS`)."""

    tier = models.PositiveSmallIntegerField(choices=Tier.choices)
    channel_kinds = models.JSONField(
        default=list, help_text='Channel kinds that receive this tier, e.g. ["slack", "email"].'
    )
    mode = models.CharField(max_length=16, choices=DeliveryMode.choices)
    dedup_window_minutes = models.PositiveIntegerField(
        default=60,
        help_text="Raising a firing alert again within this window sends nothing new; after it, "
        "an unacknowledged alert is notified again (a repeat).",
    )
    threshold_count = models.PositiveIntegerField(
        default=1, help_text="Notify only when at least this many alerts of the tier fired..."
    )
    threshold_window_minutes = models.PositiveIntegerField(
        default=60, help_text="...within this many minutes."
    )
    batch_interval_minutes = models.PositiveIntegerField(default=60)
    max_batches_per_day = models.PositiveIntegerField(default=5)
    quiet_hours = models.BooleanField(
        default=False, help_text="Hold notifications outside business hours (tenant time zone)."
    )
    business_start = models.TimeField(default=time(9, 0))
    business_end = models.TimeField(default=time(18, 0))
    business_days = models.JSONField(
        default=_weekdays, help_text="Weekdays with business hours, 0 = Monday."
    )
    summary_cadence = models.CharField(
        max_length=16, choices=SummaryCadence.choices, default=SummaryCadence.NONE
    )
    summary_time = models.TimeField(default=time(9, 0))
    summary_weekday = models.PositiveSmallIntegerField(default=0, help_text="0 = Monday")
    summary_min_count = models.PositiveIntegerField(
        default=0, help_text="Send the summary only if the period has at least this many alerts."
    )
    escalate_after_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Escalate a firing, unacknowledged alert after this."
    )
    escalation_channels = models.ManyToManyField(Channel, blank=True, related_name="+")
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "tier",
        "channel_kinds",
        "mode",
        "dedup_window_minutes",
        "threshold_count",
        "threshold_window_minutes",
        "batch_interval_minutes",
        "max_batches_per_day",
        "quiet_hours",
        "business_start",
        "business_end",
        "business_days",
        "summary_cadence",
        "summary_time",
        "summary_weekday",
        "summary_min_count",
        "escalate_after_minutes",
    )

    class Meta:
        ordering = ["tier"]
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "tier"], name="alert_policy_unique_tier")
        ]

    def __str__(self) -> str:
        return f"{Tier(self.tier).label}"


class AlertStatus(models.TextChoices):
    FIRING = "firing", "firing"
    ACKNOWLEDGED = "acknowledged", "acknowledged"
    RESOLVED = "resolved", "resolved"


class NotifyState(models.TextChoices):
    BELOW_THRESHOLD = "below_threshold", "below threshold"
    WAITING = "waiting", "waiting for batch or summary"
    NOTIFIED = "notified", "notified"


class Alert(AuditedModel, TenantOwned):
    source = models.CharField(max_length=64, db_index=True)
    tier = models.PositiveSmallIntegerField(choices=Tier.choices)
    dedup_key = models.CharField(max_length=200)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    links = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=16, choices=AlertStatus.choices, default=AlertStatus.FIRING
    )
    notify_state = models.CharField(max_length=16, choices=NotifyState.choices)
    only_kinds = models.JSONField(
        default=list, blank=True, help_text="Restricts delivery to these channel kinds."
    )
    count = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    first_notified_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=200, blank=True)
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "source",
        "tier",
        "dedup_key",
        "title",
        "status",
        "notify_state",
        "acknowledged_by",
        "resolved_by",
        "escalated_at",
    )

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dedup_key"],
                condition=~models.Q(status="resolved"),
                name="alert_one_open_per_dedup_key",
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "tier", "first_seen_at"], name="alert_tier_seen"),
            models.Index(
                fields=["tenant", "status", "tier"],
                name="alert_open",
                condition=~models.Q(status="resolved"),
            ),
        ]

    def __str__(self) -> str:
        return f"[T{self.tier}] {self.title}"


class DigestKind(models.TextChoices):
    BATCH = "batch", "batch"
    DAILY = "daily", "daily summary"
    WEEKLY = "weekly", "weekly summary"
    REPORT = "report", "report"


class Digest(TenantOwned):
    """One batch or summary notification covering several alerts. `period_key` makes a
    concurrent or repeated beat tick a no-op (unique per tenant, tier and kind)."""

    tier = models.PositiveSmallIntegerField(choices=Tier.choices)
    kind = models.CharField(max_length=16, choices=DigestKind.choices)
    period_key = models.CharField(max_length=40)
    alerts = models.ManyToManyField(Alert, related_name="digests", blank=True)
    figures = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "tier", "kind", "period_key"], name="alert_digest_unique_period"
            )
        ]

    def __str__(self) -> str:
        return f"T{self.tier} {self.kind} {self.period_key}"


class Purpose(models.TextChoices):
    TRIGGER = "trigger", "trigger"
    REPEAT = "repeat", "repeat"
    ESCALATION = "escalation", "escalation"
    ACKNOWLEDGE = "acknowledge", "acknowledge"
    RESOLVE = "resolve", "resolve"
    DIGEST = "digest", "batch or summary"
    TEST = "test", "test"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENDING = "sending", "sending"
    RETRYING = "retrying", "retrying"
    DELIVERED = "delivered", "delivered"
    DEAD = "dead", "dead letter"


class DeliveryQuerySet(TenantQuerySet):
    def dead(self) -> DeliveryQuerySet:
        return self.filter(status=DeliveryStatus.DEAD)


class Delivery(TenantOwned):
    """One notification to one channel. `idempotency_key` is sent with every attempt so a
    receiver can drop the duplicates that retries produce."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    digest = models.ForeignKey(
        Digest, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(
        default=timezone.now, help_text="Creation or last requeue: the give-up age counts from it."
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    requeued_count = models.PositiveIntegerField(default=0)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=models.Q(status__in=["pending", "retrying", "sending"]),
            ),
            models.Index(
                fields=["tenant", "dead_at"],
                name="delivery_dead",
                condition=models.Q(status="dead"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} → {self.channel_id} ({self.status})"


class DeadLetter(Delivery):
    """The dead-letter queue in the admin: deliveries that exhausted their attempts."""

    class Meta:
        proxy = True
        verbose_name = "dead letter"


class DeliveryAttempt(TenantOwned):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="history")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=24)  # delivered | failed | breaker_open | rejected
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery_id", "number"]
        indexes = [models.Index(fields=["started_at"], name="attempt_started")]

    def __str__(self) -> str:
        return f"#{self.number} {self.outcome}"


class AckLink(TenantOwned):
    """A used acknowledge link. Links are signed, not stored, when minted; inserting the nonce
    here on first use makes each one single-use."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="ack_links")
    nonce = models.CharField(max_length=48, unique=True)
    used_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"ack link for {self.alert_id}"
