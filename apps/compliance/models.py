"""The compliance gate: the rule catalog, CI check runs and their results, violations with a
lifecycle, each pull request's current decision, and daily trends.

Design (docs/architecture.md, "Compliance gate"):
- `Rule` is one global catalog (R01-R25) shared by every tenant, loaded from YAML; tenants tune
  the gate through `ComplianceSettings` (weights, threshold, unmapped results) and map their tools'
  rule ids to catalog rules with `ToolRuleMapping`.
- A `CheckRun` is one tool's results for one commit of one pull request; `CheckResult` keeps
  every result (the big, append-mostly table). A `Violation` is the deduplicated, line-insensitive
  finding of a pull request across runs: opened, seen again, resolved when a later run of the same
  tool no longer reports it.
- `PullRequest` holds the current score and decision, recomputed in the same transaction as
  anything that changes them (a run, an override decision or expiry), so a gate read is one row.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower

from apps.audit.models import AuditedModel
from apps.tenancy.scoping import TenantOwned

RULE_ID_PATTERN = r"^R\d{2}$"
REPOSITORY_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


class Tier(models.TextChoices):
    BLOCK = "BLOCK", "Block"
    OVERRIDE = "OVERRIDE", "Override"
    WARNING = "WARNING", "Warning"


class Category(models.TextChoices):
    SECURITY = "security", "Security"
    TESTING = "testing", "Testing"
    CODE_QUALITY = "code_quality", "Code quality"
    DOCUMENTATION = "documentation", "Documentation"
    OPERATIONS = "operations", "Operations"
    DEPENDENCIES = "dependencies", "Dependencies"
    PRIVACY = "privacy", "Privacy"
    RELIABILITY = "reliability", "Reliability"


class Decision(models.TextChoices):
    PASS = "PASS", "Pass"
    OVERRIDE_APPROVED = "OVERRIDE_APPROVED", "Override approved"
    FAIL = "FAIL", "Fail (score below threshold)"
    BLOCKED = "BLOCKED", "Blocked"


MERGEABLE = frozenset({Decision.PASS, Decision.OVERRIDE_APPROVED})


class Rule(AuditedModel):
    """One rule of the global catalog. Never deleted (runs and violations refer to it); a rule
    that should stop counting is disabled."""

    id = models.CharField(
        primary_key=True, max_length=3, validators=[RegexValidator(RULE_ID_PATTERN)]
    )
    slug = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tier = models.CharField(max_length=8, choices=Tier.choices)
    category = models.CharField(max_length=20, choices=Category.choices)
    policy_file = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    audit_fields = ("slug", "name", "tier", "category", "policy_file", "enabled")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.name}"

    @property
    def audit_tenant_id(self) -> None:
        return None  # the catalog is global: its changes go to the system chain

    @property
    def runbook_path(self) -> str:
        return f"docs/operations/rules/{self.id}-{self.slug}.md"


class UnmappedResults(models.TextChoices):
    REJECT = "reject", "Reject the run (422 listing them)"
    CATCH_ALL = "catch_all", "Keep them under the catch-all rule"


class ComplianceSettings(AuditedModel, TenantOwned):
    """A tenant's gate configuration. Created with the defaults on first use."""

    weight_block = models.PositiveSmallIntegerField(default=10)
    weight_override = models.PositiveSmallIntegerField(default=3)
    weight_warning = models.PositiveSmallIntegerField(default=1)
    pass_threshold = models.PositiveSmallIntegerField(
        default=70, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    unmapped_results = models.CharField(
        max_length=16, choices=UnmappedResults.choices, default=UnmappedResults.REJECT
    )
    catch_all_rule = models.ForeignKey(
        Rule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Where unmapped Conftest/SARIF results go when they are kept.",
    )
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "weight_block",
        "weight_override",
        "weight_warning",
        "pass_threshold",
        "unmapped_results",
        "catch_all_rule_id",
    )

    class Meta:
        verbose_name = "gate settings"
        verbose_name_plural = "gate settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="compliance_settings_one_per_tenant"),
            models.CheckConstraint(
                condition=~models.Q(unmapped_results="catch_all")
                | models.Q(catch_all_rule__isnull=False),
                name="compliance_settings_catch_all_needs_rule",
            ),
        ]

    def __str__(self) -> str:
        return f"gate settings of tenant {self.tenant_id}"


class ToolRuleMapping(AuditedModel, TenantOwned):
    """Maps a tool's rule id (SARIF `ruleId`) or a Conftest policy namespace to a catalog rule.
    `pattern` is exact, a prefix ending in `*` (ruff `S*`), or `*`; the most specific wins."""

    tool = models.CharField(max_length=100, help_text="Tool name as posted, e.g. ruff; * for any.")
    pattern = models.CharField(max_length=200)
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="+")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_fields = ("tool", "pattern", "rule_id", "note")

    class Meta:
        ordering = ["tool", "pattern"]
        constraints = [
            # Tool names match case-insensitively (SARIF drivers write "Bandit", people "bandit").
            models.UniqueConstraint("tenant", Lower("tool"), "pattern", name="tool_mapping_unique")
        ]

    def __str__(self) -> str:
        return f"{self.tool}:{self.pattern} → {self.rule_id}"


class PullRequest(TenantOwned):
    """A pull request's current gate state, recomputed whenever something changes it."""

    repository = models.CharField(max_length=200)
    number = models.PositiveIntegerField()
    head_sha = models.CharField(max_length=64, blank=True)
    score = models.PositiveSmallIntegerField(default=100)
    decision = models.CharField(max_length=20, choices=Decision.choices, default=Decision.PASS)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-last_run_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "repository", "number"], name="pull_request_unique"
            )
        ]
        indexes = [models.Index(fields=["tenant", "-last_run_at"], name="pr_recent")]

    def __str__(self) -> str:
        return f"{self.repository}#{self.number}"

    @property
    def can_merge(self) -> bool:
        return self.decision in MERGEABLE


class SourceFormat(models.TextChoices):
    NATIVE = "native", "Native JSON"
    CONFTEST = "conftest", "Conftest JSON"
    SARIF = "sarif", "SARIF 2.1.0"


class CheckRun(TenantOwned):
    """One tool's results for one commit of a pull request, with the response it was given."""

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="runs")
    commit_sha = models.CharField(max_length=64)
    tool = models.CharField(max_length=100)
    source_format = models.CharField(max_length=10, choices=SourceFormat.choices)
    received_at = models.DateTimeField()
    result_count = models.PositiveIntegerField(default=0)
    passed_count = models.PositiveIntegerField(default=0)
    violation_count = models.PositiveIntegerField(default=0)
    suppressed_count = models.PositiveIntegerField(default=0)
    new_violation_count = models.PositiveIntegerField(default=0)
    resolved_violation_count = models.PositiveIntegerField(default=0)
    score = models.PositiveSmallIntegerField()
    decision = models.CharField(max_length=20, choices=Decision.choices)
    response = models.JSONField(default=dict, help_text="The body returned, replayed to repeats.")

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "pull_request", "commit_sha", "tool"], name="check_run_unique"
            )
        ]
        indexes = [models.Index(fields=["tenant", "received_at"], name="check_run_received")]

    def __str__(self) -> str:
        return f"{self.tool} @ {self.commit_sha[:12]}"


class ResultStatus(models.TextChoices):
    PASS = "PASS", "Pass"
    VIOLATION = "VIOLATION", "Violation"


class CheckResult(TenantOwned):
    """One result of one run, as posted (after mapping). Written in bulk; never updated."""

    id = models.BigAutoField(primary_key=True)
    # Few indexes on purpose: every one costs each of up to 100,000 inserts per run. The
    # tenant is covered by (tenant, created_at); nothing looks results up by rule. No
    # database foreign-key constraints either: Django's are deferred, and checking 3 x 100,000
    # rows one by one at COMMIT cost more than writing them. The one writer (record_run) takes
    # the tenant from the token, creates the run in the same transaction and checks each rule
    # against the catalog; deletions still cascade through Django.
    tenant = models.ForeignKey(
        "tenancy.Tenant",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    run = models.ForeignKey(
        CheckRun, on_delete=models.CASCADE, related_name="results", db_constraint=False
    )
    rule = models.ForeignKey(
        Rule, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    status = models.CharField(max_length=9, choices=ResultStatus.choices)
    severity = models.CharField(max_length=8, choices=Tier.choices)
    suppressed = models.BooleanField(default=False)
    file_path = models.CharField(max_length=1000, blank=True)
    line = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    fingerprint = models.CharField(max_length=40, blank=True)
    tool_rule = models.CharField(max_length=200, blank=True)
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="check_result_time"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.status} {self.file_path}"


class ViolationStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"
    SUPPRESSED = "suppressed", "Suppressed by the tool"


class Violation(TenantOwned):
    """A finding of a pull request across runs, identified by a line-insensitive fingerprint
    (rule, file, normalised message). Only open ones count towards the score."""

    pull_request = models.ForeignKey(
        PullRequest, on_delete=models.CASCADE, related_name="violations"
    )
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="+")
    tool = models.CharField(max_length=100)
    fingerprint = models.CharField(max_length=40)
    severity = models.CharField(max_length=8, choices=Tier.choices)
    status = models.CharField(
        max_length=10, choices=ViolationStatus.choices, default=ViolationStatus.OPEN
    )
    file_path = models.CharField(max_length=1000, blank=True)
    line = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    first_seen_run = models.ForeignKey(
        CheckRun, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    last_seen_run = models.ForeignKey(
        CheckRun, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by_commit = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            # Per tool: each tool's findings have their own lifecycle, so a tool's run resolves
            # only what that tool reported. One override covers the fingerprint for every tool.
            models.UniqueConstraint(
                fields=["pull_request", "tool", "fingerprint"], name="violation_unique_fingerprint"
            )
        ]
        indexes = [
            # Covers the per-rule open counts of the dashboard as an index-only scan.
            models.Index(
                fields=["tenant", "status", "rule", "severity"], name="violation_status_rule"
            ),
            models.Index(fields=["pull_request", "status"], name="violation_pr_status"),
            models.Index(
                fields=["tenant", "status", "-last_seen_at"], name="violation_status_recent"
            ),
            models.Index(
                fields=["tenant", "resolved_at"],
                name="violation_resolved",
                condition=models.Q(status="resolved"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.file_path or '-'} ({self.status})"


class RuleCheckState(TenantOwned):
    """When each rule was last evaluated for a tenant: kept per run so that the dashboard does
    not scan the results table for it."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="+")
    last_checked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "rule"], name="rule_check_state_unique")
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} checked {self.last_checked_at:%Y-%m-%d %H:%M}"


class RuleTrend(TenantOwned):
    """Daily aggregate per tenant and rule (the tenant's calendar day). Rebuilt idempotently."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    evaluated = models.PositiveIntegerField(default=0)
    passing = models.PositiveIntegerField(default=0)
    violations = models.PositiveIntegerField(default=0)
    compliance_rate = models.FloatField(null=True, blank=True)
    built_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "rule", "day"], name="rule_trend_unique")
        ]
        indexes = [models.Index(fields=["tenant", "day"], name="rule_trend_day")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.day}"
