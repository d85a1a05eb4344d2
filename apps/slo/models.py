"""SLOs: services, objectives, the measurements services push, their rollups, canary releases and
daily reports.

Data flows one way. Services push per-minute aggregates (`MinuteSample`, one row per service,
route, version and minute; a replay replaces the row). Each ingest recomputes, from those rows,
the hours it touched (`RouteHour`, `ServiceHour`) and every SLO's good/total events per minute,
hour and UTC day (`SLIPoint`). Window sums over any range are then a handful of rows whatever the
window's length (apps/slo/windows.py), which is what the burn-rate alerts, budgets and reports
read. Nothing is averaged: every ratio is a ratio of summed counts.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from apps.audit.models import AuditedModel
from apps.tenancy.scoping import TenantOwned

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
name_validator = RegexValidator(
    NAME_PATTERN, "Lowercase letters, digits and '-', 1 to 63 characters, not ending in '-'."
)
WINDOW_CHOICES = ((7, "7 days"), (28, "28 days"), (30, "30 days"))


class SLIType(models.TextChoices):
    AVAILABILITY = "availability", "Availability"  # requests without errors ÷ requests
    LATENCY = "latency", "Latency"  # requests at most the threshold ÷ requests
    RATIO = "ratio", "Ratio"  # good counter ÷ total counter


class SLOSettings(AuditedModel, TenantOwned):
    """Per-tenant choices: unknown services in ingestion, the daily report."""

    auto_create_services = models.BooleanField(
        default=False,
        help_text="Create a service the first time ingestion names it (default: reject with 422).",
    )
    report_enabled = models.BooleanField(default=True)
    report_hour = models.PositiveSmallIntegerField(
        default=9,
        validators=[MaxValueValidator(23)],
        help_text="Local hour (tenant time zone) at which yesterday's report is built and sent.",
    )
    report_channel_kinds = models.JSONField(
        default=list,
        blank=True,
        help_text='Channel kinds the report goes to; empty = ["email", "slack"].',
    )
    version = models.PositiveIntegerField(default=1)

    audit_fields = ("auto_create_services", "report_enabled", "report_hour", "report_channel_kinds")

    class Meta:
        verbose_name_plural = "SLO settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="slo_settings_one_per_tenant")
        ]

    def __str__(self) -> str:
        return "SLO settings"


class Service(AuditedModel, TenantOwned):
    name = models.CharField(max_length=63, validators=[name_validator])
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    owner = models.CharField(max_length=200, blank=True)
    no_data_minutes = models.PositiveIntegerField(
        default=15,
        help_text="Raise a 'no data' alert after this many minutes without measurements; 0 = off.",
    )
    canary_policy = models.JSONField(
        default=dict,
        blank=True,
        help_text='Overrides of the canary defaults, e.g. {"max_p95_ms": 500}.',
    )
    report_ratios = models.JSONField(
        default=list,
        blank=True,
        help_text='Ratios for the daily report: [{"name": "STP rate", "good": "stp_success", '
        '"total": "stp_total"}].',
    )
    counter_aggregates = models.JSONField(
        default=dict,
        blank=True,
        help_text='How the report aggregates a counter over the day: "sum" (default, volumes), '
        '"last" or "mean" (support figures), e.g. {"open_tickets": "last", "csat": "mean"}.',
    )
    last_data_at = models.DateTimeField(
        null=True, blank=True, help_text="The latest minute measured."
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    audit_fields = (
        "name",
        "display_name",
        "owner",
        "no_data_minutes",
        "canary_policy",
        "report_ratios",
        "counter_aggregates",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="slo_service_unique_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return self.display_name or self.name


class SLO(AuditedModel, TenantOwned):
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="slos")
    name = models.CharField(
        max_length=63,
        validators=[name_validator],
        help_text="Unique per tenant; rollouts listen to the signal slo:<name>.",
    )
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    sli_type = models.CharField(
        max_length=16,
        choices=SLIType.choices,
        help_text="Availability: requests without errors ÷ requests. Latency: requests at most "
        "the threshold ÷ requests. Ratio: good counter ÷ total counter.",
    )
    objective_percent = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("99.9999"))],
        help_text="e.g. 99.9",
    )
    window_days = models.PositiveSmallIntegerField(choices=WINDOW_CHOICES, default=30)
    latency_threshold_ms = models.FloatField(
        null=True, blank=True, help_text="Latency SLIs: a request is good when at most this slow."
    )
    good_counter = models.CharField(max_length=64, blank=True)
    total_counter = models.CharField(max_length=64, blank=True)
    alerting = models.JSONField(
        default=dict,
        blank=True,
        help_text="Overrides of the multiwindow burn-rate alerts (see docs/operations/"
        "slo-runbook.md); empty = the SRE workbook defaults.",
    )
    min_events = models.PositiveIntegerField(
        default=100,
        help_text="Traffic guard: a burn-rate condition holds only when both of its windows saw "
        "at least this many events.",
    )
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    audit_fields = (
        "service_id",
        "name",
        "display_name",
        "sli_type",
        "objective_percent",
        "window_days",
        "latency_threshold_ms",
        "good_counter",
        "total_counter",
        "alerting",
        "min_events",
        "enabled",
    )

    class Meta:
        verbose_name = "SLO"
        ordering = ["service__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="slo_slo_unique_name"),
            models.CheckConstraint(
                condition=~models.Q(sli_type="latency") | models.Q(latency_threshold_ms__gt=0),
                name="slo_latency_needs_threshold",
            ),
            models.CheckConstraint(
                condition=~models.Q(sli_type="ratio")
                | (~models.Q(good_counter="") & ~models.Q(total_counter="")),
                name="slo_ratio_needs_counters",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return self.display_name or self.name

    @property
    def objective(self) -> float:
        """The objective as a fraction (0.999)."""
        return float(self.objective_percent) / 100

    @property
    def signal(self) -> str:
        return f"slo:{self.name}"


class SLOStatus(TenantOwned):
    """The latest evaluation of one SLO (written every minute; not audited, not versioned)."""

    slo = models.OneToOneField(SLO, on_delete=models.CASCADE, related_name="status")
    evaluated_at = models.DateTimeField()
    window_good = models.FloatField(default=0)
    window_total = models.FloatField(default=0)
    budget_remaining = models.FloatField(null=True, blank=True)
    burn_rates = models.JSONField(default=dict)
    firing = models.JSONField(default=list)

    class Meta:
        verbose_name_plural = "SLO statuses"

    def __str__(self) -> str:
        return f"{self.slo_id} at {self.evaluated_at:%Y-%m-%d %H:%M}"


class MinuteSample(TenantOwned):
    """One minute of one service's route and version, as pushed. `buckets` are cumulative
    latency bucket counts in milliseconds (`{"100": 950, "250": 990, "+Inf": 1000}`).

    The hottest table, written only by ingestion, which takes its service ids from rows it has
    just locked: its foreign keys are kept by Django (a deleted service's rows are deleted with
    it) but not re-checked by the database for every row at commit (10 % of a batch), row-level
    security still checks the tenant, and the service needs no index of its own (the unique
    constraint and the time index start with it).
    """

    tenant = models.ForeignKey(
        "tenancy.Tenant",
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    route = models.CharField(max_length=200, blank=True, default="")
    version = models.CharField(max_length=100, blank=True, default="")
    minute = models.DateTimeField()
    requests = models.BigIntegerField()
    errors = models.BigIntegerField()
    buckets = models.JSONField(default=dict)
    counters = models.JSONField(default=dict)
    error_samples = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service", "route", "version", "minute"], name="slo_minute_unique"
            )
        ]
        indexes = [models.Index(fields=["service", "minute"], name="slo_minute_service_time")]


class _Hour(TenantOwned):
    """An hour's sums. Counters are `{name: {"sum", "n", "last", "at"}}`."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()
    requests = models.BigIntegerField()
    errors = models.BigIntegerField()
    buckets = models.JSONField(default=dict)
    counters = models.JSONField(default=dict)
    error_samples = models.JSONField(default=list)

    class Meta:
        abstract = True


class RouteHour(_Hour):
    """One hour of one route, all versions."""

    route = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service", "route", "hour"], name="slo_routehour_unique"
            )
        ]


class ServiceHour(_Hour):
    """One hour of one service, all routes and versions."""

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "hour"], name="slo_servicehour_unique")
        ]


class Resolution(models.TextChoices):
    MINUTE = "m", "minute"
    HOUR = "h", "hour"
    DAY = "d", "UTC day"


class SLIPoint(TenantOwned):
    """An SLO's good and total events in one minute, hour or UTC day."""

    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="+", db_index=False)
    resolution = models.CharField(max_length=1, choices=Resolution.choices)
    start = models.DateTimeField()
    good = models.FloatField()
    total = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["slo", "resolution", "start"], name="slo_slipoint_unique"
            )
        ]


class Verdict(models.TextChoices):
    CONTINUE = "continue", "continue"
    PROMOTE = "promote", "promote"
    ROLLBACK = "rollback", "roll back"


class Release(AuditedModel, TenantOwned):
    """A canary: `version` takes `canary_weight` percent of the traffic next to `baseline_version`.

    Beat checks it every minute (`CanaryCheck`) while it is open; the verdict is what release
    tooling and the flags app's progressive rollouts (signal `canary:<service>`) act on.
    """

    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=100)
    baseline_version = models.CharField(max_length=100)
    canary_weight = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))],
    )
    policy = models.JSONField(default=dict, help_text="The canary policy for this release.")
    started_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=200, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.CONTINUE)
    verdict_reasons = models.JSONField(default=list, blank=True)
    verdict_figures = models.JSONField(default=dict, blank=True)
    verdict_at = models.DateTimeField(null=True, blank=True)
    verdict_changed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    version_lock = models.PositiveIntegerField(default=1)

    audit_fields = (
        "service_id",
        "version",
        "baseline_version",
        "canary_weight",
        "policy",
        "closed_at",
        "close_reason",
        "verdict",
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(
                fields=["started_at"],
                name="slo_release_open",
                condition=models.Q(closed_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.version}"

    @property
    def signal(self) -> str:
        return f"canary:{self.service.name}"


class CanaryCheck(TenantOwned):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="checks")
    minute = models.DateTimeField()
    passed = models.BooleanField()
    failures = models.JSONField(default=list)
    canary = models.JSONField(null=True)
    baseline = models.JSONField(null=True)

    class Meta:
        ordering = ["minute"]
        constraints = [
            models.UniqueConstraint(fields=["release", "minute"], name="slo_canarycheck_unique")
        ]


class DailyReport(TenantOwned):
    """Yesterday in the tenant's time zone, per service; regenerated idempotently."""

    date = models.DateField()
    time_zone = models.CharField(max_length=64)
    content = models.JSONField()
    sha256 = models.CharField(max_length=64)
    evidence = models.ForeignKey(
        "audit.EvidenceArtifact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    generated_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-date"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "date"], name="slo_dailyreport_unique_date")
        ]

    def __str__(self) -> str:
        return f"SLO report {self.date:%Y-%m-%d}"
