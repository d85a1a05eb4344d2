"""Feature flags: environments, flags, per-environment states, segments and environment keys.

A flag's definition (key, type, variants, kind) is shared by every environment; what it serves is
per environment (`FlagState`: on/off, default variant, ordered rules, fallthrough). Every change
bumps the environment's `config_version`, which is what the evaluation caches of every process
compare against (apps/flags/runtime.py). Rules and segment conditions are stored as small JSON
documents validated by apps/flags/rules.py and compiled to flagd targeting by apps/flags/flagd.py.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from apps.audit.models import AuditedModel
from apps.tenancy.scoping import TenantOwned

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
key_validator = RegexValidator(
    KEY_PATTERN, "Letters, digits, '_', '.' and '-', starting with a letter or digit; ≤ 100."
)
DEFAULT_ENVIRONMENTS = (  # key, name, changes need approval
    ("development", "Development", False),
    ("staging", "Staging", False),
    ("production", "Production", True),
)


class ValueType(models.TextChoices):
    BOOLEAN = "boolean", "Boolean"
    STRING = "string", "String"
    INTEGER = "integer", "Integer"
    FLOAT = "float", "Float"
    OBJECT = "object", "Object"


class FlagKind(models.TextChoices):
    RELEASE = "release", "Release"
    EXPERIMENT = "experiment", "Experiment"
    OPERATIONAL = "operational", "Operational"
    KILL_SWITCH = "kill_switch", "Kill switch"
    MAINTENANCE = "maintenance", "Maintenance"
    PERMISSION = "permission", "Permission"


class Environment(AuditedModel, TenantOwned):
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    sort_order = models.PositiveSmallIntegerField(default=0)
    config_version = models.PositiveBigIntegerField(
        default=1, help_text="Bumped by every change that alters what this environment serves."
    )
    requires_approval = models.BooleanField(
        default=False,
        help_text="Changes wait as change requests until a second operator approves (four eyes).",
    )
    kill_switch_exempt = models.BooleanField(
        default=True, help_text="The kill switch acts at once, even where changes need approval."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    audit_fields = ("key", "name", "sort_order", "requires_approval", "kill_switch_exempt")

    class Meta:
        ordering = ["sort_order", "key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="flags_environment_unique_key")
        ]

    def __str__(self) -> str:
        return self.key


class EnvironmentKey(AuditedModel, TenantOwned):
    """A key that services use to evaluate one environment's flags (OFREP, flagd sync).

    Only the SHA-256 of the secret is stored; the plaintext `ofk_<prefix>_<secret>` is shown once.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    audit_fields = ("environment_id", "name", "prefix", "revoked_at")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} (ofk_{self.prefix}…)"


class Flag(AuditedModel, TenantOwned):
    key = models.CharField(max_length=100, validators=[key_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    value_type = models.CharField(max_length=10, choices=ValueType.choices)
    variants = models.JSONField(help_text='Variant name → value, e.g. {"on": true}.')
    kind = models.CharField(max_length=20, choices=FlagKind.choices, default=FlagKind.RELEASE)
    owner = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    archived = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_fields = (
        "key",
        "name",
        "description",
        "value_type",
        "variants",
        "kind",
        "owner",
        "tags",
        "archived",
        "version",
    )

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="flags_flag_unique_key")
        ]

    def __str__(self) -> str:
        return self.key


class FlagState(AuditedModel, TenantOwned):
    """What one flag serves in one environment."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="states")
    enabled = models.BooleanField(default=False)
    default_variant = models.CharField(
        max_length=100, help_text="Served when the flag is off and when no rule matches."
    )
    rules = models.JSONField(default=list, blank=True)
    fallthrough = models.JSONField(
        default=dict,
        blank=True,
        help_text='When no rule matches: {"variant": …} or {"split": [{"variant", "weight"}]}; '
        "empty means the default variant.",
    )
    killed_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by the kill switch; cleared when turned on again."
    )
    last_evaluated_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last OFREP evaluation (flushed from memory, ≤ 1 min late).",
    )
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    audit_fields = ("enabled", "default_variant", "rules", "fallthrough", "killed_at", "version")

    class Meta:
        ordering = ["flag__key", "environment__sort_order"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"], name="flags_state_unique_flag_env"
            )
        ]
        indexes = [models.Index(fields=["environment", "flag"], name="flags_state_env")]

    def __str__(self) -> str:
        return f"{self.flag_id}@{self.environment_id}"


class Segment(AuditedModel, TenantOwned):
    """Reusable conditions on context attributes: markets, pilot cohorts, internal users."""

    key = models.CharField(max_length=100, validators=[key_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    conditions = models.JSONField(help_text='{"all"|"any"|"none": [conditions…]} or one condition.')
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    audit_fields = ("key", "name", "description", "conditions", "version")

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="flags_segment_unique_key")
        ]

    def __str__(self) -> str:
        return self.key


class FlagEvaluationCount(TenantOwned):
    """Evaluations per flag, environment, variant and UTC day.

    Counted in each web process's memory and added here by a periodic flush (apps/flags/stats.py),
    never written per evaluation. Not audited: usage is not a state change.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="evaluation_counts")
    variant = models.CharField(max_length=100)
    day = models.DateField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "flag", "variant", "day"], name="flags_eval_count_unique"
            )
        ]
        indexes = [models.Index(fields=["flag", "day"], name="flags_eval_count_flag_day")]

    def __str__(self) -> str:
        return f"{self.flag_id}/{self.variant} {self.day}: {self.count}"


class ChangeStatus(models.TextChoices):
    PENDING = "PENDING", "Waiting for approval"
    SCHEDULED = "SCHEDULED", "Scheduled"
    APPLIED = "APPLIED", "Applied"
    REJECTED = "REJECTED", "Rejected"
    CANCELED = "CANCELED", "Canceled"
    FAILED = "FAILED", "Failed"


OPEN_CHANGE_STATUSES = (ChangeStatus.PENDING, ChangeStatus.SCHEDULED)


class FlagChange(AuditedModel, TenantOwned):
    """A change to what a flag serves in one environment that is not applied at once: it waits
    for a second operator's approval (four eyes), or for its time (scheduled), or both."""

    state = models.ForeignKey(FlagState, on_delete=models.CASCADE, related_name="changes")
    changes = models.JSONField(help_text="The FlagState fields to set: enabled, rules, …")
    status = models.CharField(max_length=10, choices=ChangeStatus.choices)
    apply_at = models.DateTimeField(null=True, blank=True, help_text="Empty: on approval.")
    note = models.TextField(blank=True)
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_token = models.ForeignKey(
        "tenancy.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=200)
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by_label = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "changes",
        "status",
        "apply_at",
        "requested_by_label",
        "decided_by_label",
        "decision_reason",
        "applied_at",
        "error",
    )

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            models.Index(
                fields=["apply_at"],
                name="flags_change_due",
                condition=models.Q(status="SCHEDULED"),
            ),
            models.Index(fields=["tenant", "status"], name="flags_change_status"),
        ]

    def __str__(self) -> str:
        return f"change #{self.pk} ({self.status})"


class RolloutStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    PAUSED = "PAUSED", "Paused"
    HALTED = "HALTED", "Halted"
    COMPLETED = "COMPLETED", "Completed"
    CANCELED = "CANCELED", "Canceled"


ACTIVE_ROLLOUT_STATUSES = (RolloutStatus.RUNNING, RolloutStatus.PAUSED, RolloutStatus.HALTED)
DEFAULT_STAGES = [0, 5, 25, 50, 100]


class RolloutPlan(AuditedModel, TenantOwned):
    """A progressive rollout of one flag in one environment: the fallthrough serves `variant` to
    a growing percentage of users, stage by stage, each kept at least `min_dwell_minutes`.

    Stages bucket with flagd's `fractional`, the feature variant first, so a user who has the
    feature at 5 % keeps it at 25 %. A signal named in `halt_on` (an SLO's burn-rate alert, a
    canary verdict) halts the plan and steps it back one stage.
    """

    state = models.ForeignKey(FlagState, on_delete=models.CASCADE, related_name="rollouts")
    variant = models.CharField(max_length=100, default="on")
    other_variant = models.CharField(max_length=100, default="off")
    stages = models.JSONField(default=list)
    stage_index = models.PositiveSmallIntegerField(default=0)
    stage_started_at = models.DateTimeField()
    min_dwell_minutes = models.PositiveIntegerField(default=60)
    auto_advance = models.BooleanField(default=False)
    halt_on = models.JSONField(
        default=list, blank=True, help_text='Signals that halt it, e.g. ["slo:checkout-latency"].'
    )
    status = models.CharField(
        max_length=10, choices=RolloutStatus.choices, default=RolloutStatus.RUNNING
    )
    status_reason = models.TextField(blank=True)
    created_by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "variant",
        "stages",
        "stage_index",
        "min_dwell_minutes",
        "auto_advance",
        "halt_on",
        "status",
        "status_reason",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"],
                condition=models.Q(status__in=["RUNNING", "PAUSED", "HALTED"]),
                name="flags_one_active_rollout_per_state",
            )
        ]

    def __str__(self) -> str:
        return f"rollout #{self.pk} ({self.status})"

    @property
    def percentage(self) -> int:
        return self.stages[self.stage_index]
