"""DR drills: scheduled proof that backups restore.

A `Drill` names a database (the portal's own by default, or an external PostgreSQL whose DSN is
stored encrypted), a kind (restore a backup into a throwaway shadow database and prove it is
identical, or rehearse rolling the schema back) and its targets (RTO, RPO). Each execution is a
`DrillRun` with phase timings, per-table verification and the figures an auditor asks for; the
finished report is also kept as an evidence artifact. A `Backup` is one `pg_dump` (or SQLite
backup) file in BACKUP_DIR with its SHA-256, re-checked before every restore.
"""

from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from apps.audit.models import AuditedModel
from apps.tenancy.models import validate_time_zone
from apps.tenancy.scoping import TenantOwned

name_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "Lowercase letters, digits and '-', 1 to 63 characters, not ending in '-'.",
)


class DrillKind(models.TextChoices):
    BACKUP_RESTORE = "backup_restore", "Backup and restore"
    MIGRATION_ROLLBACK = "migration_rollback", "Migration rollback rehearsal"


class TargetKind(models.TextChoices):
    PORTAL = "portal", "The portal's own database"
    EXTERNAL = "external", "External PostgreSQL (DSN)"


class Drill(AuditedModel, TenantOwned):
    name = models.CharField(max_length=63, validators=[name_validator])
    kind = models.CharField(max_length=24, choices=DrillKind.choices)
    target = models.CharField(max_length=16, choices=TargetKind.choices, default=TargetKind.PORTAL)
    dsn_ciphertext = models.TextField(blank=True, editable=False)
    dsn_hint = models.CharField(
        "DSN (without its password)", max_length=300, blank=True, editable=False
    )
    schedule = models.CharField(
        max_length=100,
        default="0 2 * * 6",
        help_text="Cron expression (minute hour day-of-month month day-of-week), local time; "
        "default Saturdays 02:00.",
    )
    time_zone = models.CharField(
        max_length=64, default="America/Edmonton", validators=[validate_time_zone]
    )
    rto_target_seconds = models.PositiveIntegerField(
        "RTO target (seconds)",
        default=15 * 60,
        validators=[MinValueValidator(1)],
        help_text="Default 15 minutes.",
    )
    rpo_target_seconds = models.PositiveIntegerField(
        "RPO target (seconds)",
        default=24 * 3600,
        validators=[MinValueValidator(1)],
        help_text="Default 24 hours (daily logical backups).",
    )
    use_latest_backup = models.BooleanField(
        default=False,
        help_text="Restore the latest stored backup instead of taking a fresh one (the RPO is "
        "then its age).",
    )
    rollback_to = models.CharField(
        max_length=500,
        blank=True,
        default="steps=1",
        help_text="Migration rollback only: steps=N (N migrations back per portal app), "
        "app=migration,... or the path of a migration state file written by "
        "`manage.py migration_state`.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "name",
        "kind",
        "target",
        "dsn_hint",
        "schedule",
        "time_zone",
        "rto_target_seconds",
        "rpo_target_seconds",
        "use_latest_backup",
        "rollback_to",
        "enabled",
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="drill_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def target_label(self) -> str:
        return "portal database" if self.target == TargetKind.PORTAL else self.dsn_hint


class BackupStatus(models.TextChoices):
    OK = "ok", "ok"
    FAILED = "failed", "failed"
    CORRUPT = "corrupt", "corrupt (SHA-256 mismatch)"
    MISSING = "missing", "file missing"
    EXPIRED = "expired", "expired (file removed)"


class BackupQuerySet(models.QuerySet):
    def visible_to(self, tenant) -> BackupQuerySet:
        """A tenant sees the backups of its external targets, and the portal's own backups
        when it has a drill on the portal's database (which only a superuser can create)."""
        if tenant is None:
            return self.none()
        query = models.Q(owner_tenant=tenant)
        if Drill.objects.for_tenant(tenant).filter(target=TargetKind.PORTAL).exists():
            query |= models.Q(owner_tenant__isnull=True, target_key="portal")
        return self.filter(query)


class Backup(models.Model):
    """One backup file. Backups of the portal's own database belong to no tenant; backups of a
    tenant's external target belong to that tenant. Not row-level-security scoped like tenant
    rows (a portal backup has no tenant): reads go through `visible_to`."""

    owner_tenant = models.ForeignKey(
        "tenancy.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    drill = models.ForeignKey(
        Drill, null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    target_key = models.CharField(
        max_length=100, help_text='"portal" or "drill:<id>" for an external target.'
    )
    engine = models.CharField(max_length=16)
    path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    snapshot_at = models.DateTimeField(help_text="When the data in the file was read (RPO).")
    duration_seconds = models.FloatField(default=0)
    status = models.CharField(max_length=16, choices=BackupStatus.choices, default=BackupStatus.OK)
    error = models.TextField(blank=True)
    manifest = models.JSONField(
        default=dict,
        blank=True,
        help_text="Row counts, checksums, sequences and schema of the data in the file.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = BackupQuerySet.as_manager()

    class Meta:
        ordering = ["-snapshot_at"]
        indexes = [models.Index(fields=["target_key", "-snapshot_at"], name="backup_target_latest")]

    def __str__(self) -> str:
        return f"{self.target_key} {self.snapshot_at:%Y-%m-%d %H:%M}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    PASSED = "passed", "passed"
    FAILED = "failed", "failed"
    CANCELED = "canceled", "canceled"
    REFUSED = "refused", "refused"


FINISHED = (RunStatus.PASSED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.REFUSED)


class DrillRun(TenantOwned):
    """One execution. Not an audited model (it changes phase by phase); its creation, start and
    outcome are audit events, and the finished report is an evidence artifact."""

    drill = models.ForeignKey(Drill, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=24, choices=DrillKind.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=16, default="manual")
    requested_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    phases = models.JSONField(default=list, blank=True)
    tables = models.JSONField(default=list, blank=True)
    mismatches = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    backup = models.ForeignKey(
        Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    backup_bytes = models.BigIntegerField(null=True, blank=True)
    backup_sha256 = models.CharField(max_length=64, blank=True)
    rto_seconds = models.FloatField(null=True, blank=True)
    rpo_seconds = models.FloatField(null=True, blank=True)
    rto_met = models.BooleanField(null=True)
    rpo_met = models.BooleanField(null=True)
    shadow_database = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    evidence = models.ForeignKey(
        "audit.EvidenceArtifact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["drill", "-created_at"], name="drillrun_drill_latest"),
            models.Index(fields=["status"], name="drillrun_status"),
        ]

    def __str__(self) -> str:
        return f"{self.drill} run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
