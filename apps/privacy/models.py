"""Privacy operations: data subject requests with their statutory deadlines and lifecycle, the
one-time codes that verify a subject's identity, the data map's external sources (PostgreSQL
tables, webhook connectors), the non-personal records of erasures (replayed after a restore),
restrictions and objections per purpose, consent records, retention policies and the Article 30
record of processing activities.

A request's due date is computed from its jurisdiction (apps/privacy/deadlines.py) when it is
received, and again when it is extended (once) or resumed after a pause (the paused time is
added back). Every transition is an audited save of the request.

Subjects are also known by a keyed hash of their identity (`subject_key`: HMAC-SHA-256 with the
tenant's own secret, apps/privacy/identity.py), which is what survives an erasure: erasure
records, restrictions and a completed erasure request keep the hash, never the email.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.audit.models import AuditedModel
from apps.tenancy.scoping import TenantOwned


class RequestType(models.TextChoices):
    ACCESS = "access", "Access (Art. 15)"
    PORTABILITY = "portability", "Portability (Art. 20)"
    RECTIFICATION = "rectification", "Rectification (Art. 16)"
    ERASURE = "erasure", "Erasure (Art. 17)"
    RESTRICTION = "restriction", "Restriction (Art. 18)"
    OBJECTION = "objection", "Objection (Art. 21)"


class Jurisdiction(models.TextChoices):
    GDPR = "gdpr", "GDPR (EU/EEA)"
    PIPEDA = "pipeda", "PIPEDA (Canada)"
    PDPL = "pdpl", "PDPL (Saudi Arabia)"
    CCPA = "ccpa", "CCPA/CPRA (California)"


class Status(models.TextChoices):
    RECEIVED = "received", "received"
    IDENTITY_PENDING = "identity_pending", "identity pending"
    VERIFIED = "verified", "verified"
    APPROVED = "approved", "approved"
    IN_PROGRESS = "in_progress", "in progress"
    COMPLETED = "completed", "completed"
    REJECTED = "rejected", "rejected"
    CANCELED = "canceled", "canceled"
    FAILED = "failed", "failed"
    REQUIRES_INPUT = "requires_input", "requires input"
    PAUSED = "paused", "paused (clock stopped)"


OPEN_STATUSES = tuple(
    s for s in Status.values if s not in (Status.COMPLETED, Status.REJECTED, Status.CANCELED)
)


class PrivacySettings(AuditedModel, TenantOwned):
    default_jurisdiction = models.CharField(
        max_length=8, choices=Jurisdiction.choices, default=Jurisdiction.GDPR
    )
    duplicate_lookback_days = models.PositiveIntegerField(
        default=30,
        help_text="A new request of the same type for the same subject within this many days of "
        "an open one is recorded as its duplicate, not processed twice.",
    )
    required_purposes = models.JSONField(
        default=list,
        blank=True,
        help_text="Consent purposes (slugs) every subject with data must have a record for; "
        "`manage.py consent_completeness` reports the gaps.",
    )
    # The tenant's secret for keyed hashes (pseudonymisation, subject keys), encrypted with
    # FIELD_ENCRYPTION_KEYS; generated once, never shown.
    hash_key_ciphertext = models.TextField(blank=True, editable=False)
    version = models.PositiveIntegerField(default=1)

    audit_fields = ("default_jurisdiction", "duplicate_lookback_days", "required_purposes")

    class Meta:
        verbose_name_plural = "privacy settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="privacy_settings_one_per_tenant")
        ]

    def __str__(self) -> str:
        return "Privacy settings"


class PrivacyRequest(AuditedModel, TenantOwned):
    request_type = models.CharField(max_length=16, choices=RequestType.choices)
    jurisdiction = models.CharField(max_length=8, choices=Jurisdiction.choices)
    subject_email = models.EmailField(blank=True)
    subject_external_id = models.CharField(max_length=200, blank=True)
    subject_key = models.CharField(
        max_length=64, blank=True, help_text="Keyed hash of the identity; kept after erasure."
    )
    channel = models.CharField(
        max_length=40, default="web form", help_text="How it arrived: web form, email, phone ..."
    )
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    received_at = models.DateTimeField(default=timezone.now)
    received_on = models.DateField(help_text="The day of receipt in the tenant's time zone.")
    due_on = models.DateField()
    acknowledge_by = models.DateField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    extended = models.BooleanField(default=False)
    extension_reason = models.TextField(blank=True)
    extension_notice_on = models.DateField(null=True, blank=True)
    paused_since = models.DateTimeField(null=True, blank=True)
    paused_from_status = models.CharField(max_length=16, blank=True)
    paused_seconds = models.PositiveBigIntegerField(default=0)
    input_from_status = models.CharField(
        max_length=16, blank=True, help_text="Where `requires_input` returns to."
    )
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_method = models.CharField(max_length=16, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_note = models.TextField(blank=True)
    reminders_sent = models.JSONField(default=list, blank=True)
    package_path = models.CharField(max_length=500, blank=True)
    package_sha256 = models.CharField(max_length=64, blank=True)
    package_manifest = models.JSONField(default=dict, blank=True)
    corrections = models.JSONField(
        default=dict,
        blank=True,
        help_text='Rectification: {"source": {"field": "corrected value"}}.',
    )
    purposes = models.JSONField(
        default=list, blank=True, help_text="Restriction/objection: the purposes (slugs) it covers."
    )
    plan = models.JSONField(
        default=dict, blank=True, help_text="The dry run: what would change, per source and field."
    )
    planned_at = models.DateTimeField(null=True, blank=True)
    outcome = models.JSONField(
        default=dict, blank=True, help_text="What was done and not done, per source."
    )
    erased_at = models.DateTimeField(null=True, blank=True)
    evidence = models.ForeignKey(
        "audit.EvidenceArtifact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "request_type",
        "jurisdiction",
        "status",
        "due_on",
        "extended",
        "extension_reason",
        "extension_notice_on",
        "paused_since",
        "paused_seconds",
        "duplicate_of_id",
        "verified_at",
        "verification_method",
        "last_note",
    )

    class Meta:
        ordering = ["due_on", "pk"]
        indexes = [
            models.Index(fields=["tenant", "status", "due_on"], name="privacy_request_due"),
            models.Index(fields=["tenant", "subject_email"], name="privacy_request_email"),
            models.Index(fields=["tenant", "subject_key"], name="privacy_request_key"),
        ]

    def __str__(self) -> str:
        return f"{self.get_request_type_display()} request {self.pk}"

    @property
    def subject_label(self) -> str:
        if self.erased_at and not (self.subject_email or self.subject_external_id):
            return f"erased (key {self.subject_key[:10]}…)"
        return self.subject_email or self.subject_external_id or "(unknown subject)"


class VerificationCode(TenantOwned):
    """A one-time code mailed to the subject; only its hash is stored."""

    request = models.ForeignKey(
        PrivacyRequest, on_delete=models.CASCADE, related_name="verification_codes"
    )
    code_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]


class ConsentRecord(TenantOwned):
    """One statement of consent given or withdrawn. Append-only: the current state of a subject
    and purpose is its latest record; nothing is ever changed or deleted."""

    subject = models.CharField(max_length=200, help_text="The subject's email or external id.")
    purpose = models.SlugField(max_length=80)
    granted = models.BooleanField()
    policy_version = models.CharField(max_length=40)
    source = models.CharField(max_length=80, help_text="Where it was given: signup form, app ...")
    given_at = models.DateTimeField(help_text="When the subject gave or withdrew it.")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["subject", "purpose", "given_at", "pk"]
        indexes = [
            models.Index(fields=["tenant", "subject", "purpose", "given_at"], name="consent_state")
        ]

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("Consent records are append-only: record a new one instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Consent records are append-only.")


class Strategy(models.TextChoices):
    """How a field is treated by an erasure (apps/privacy/masking.py)."""

    KEEP = "keep", "keep (not personal)"
    DELETE_ROW = "delete_row", "delete the row"
    SET_NULL = "set_null", "set to null"
    REPLACE = "replace", "fixed replacement"
    KEYED_HASH = "keyed_hash", "keyed hash (HMAC-SHA-256, pseudonymised)"
    RANDOM_STRING = "random_string", "random string"
    TRUNCATE_DATE = "truncate_date", "truncate the date (to the month)"


class SubjectKind(models.TextChoices):
    EMAIL = "email", "email"
    EXTERNAL_ID = "external_id", "external id"


class ExternalDatabase(AuditedModel, TenantOwned):
    """A PostgreSQL database outside the portal that holds personal data. The DSN is stored
    encrypted and shown again only without its password (`dsn_hint`)."""

    name = models.SlugField(max_length=80)
    dsn_ciphertext = models.TextField(editable=False)
    dsn_hint = models.CharField(max_length=300, editable=False)
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)

    audit_fields = ("name", "dsn_hint", "enabled")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="privacy_external_db_name")
        ]

    def __str__(self) -> str:
        return self.name


class ExternalTable(AuditedModel, TenantOwned):
    """One table of an external database: how to find a subject's rows (`subject_column`, an
    email or external id) and, per column, its category, masking strategy and legal hold:
    `{"column": {"category": "contact", "strategy": "keyed_hash", "replacement": "",
    "legal_hold": ""}}`. Columns not listed are neither exported nor changed."""

    database = models.ForeignKey(ExternalDatabase, on_delete=models.CASCADE, related_name="tables")
    table = models.CharField(max_length=127, help_text="schema.table (default schema public)")
    key_column = models.CharField(max_length=63, default="id", help_text="The primary key.")
    subject_column = models.CharField(max_length=63)
    subject_kind = models.CharField(
        max_length=12, choices=SubjectKind.choices, default=SubjectKind.EMAIL
    )
    columns = models.JSONField(default=dict)
    enabled = models.BooleanField(default=True)

    audit_fields = ("table", "key_column", "subject_column", "subject_kind", "columns", "enabled")

    class Meta:
        ordering = ["database__name", "table"]
        constraints = [
            models.UniqueConstraint(fields=["database", "table"], name="privacy_external_table")
        ]

    def __str__(self) -> str:
        return f"{self.database.name}.{self.table}"

    @property
    def source_name(self) -> str:
        return f"external.{self.database.name}.{self.table}"


class WebhookConnector(AuditedModel, TenantOwned):
    """Another system that answers for its own data: the portal POSTs a signed JSON request
    (access, preview, erase, rectify) and takes the JSON result from the response, or later
    from the connector's call to the callback URL (apps/privacy/connectors.py)."""

    name = models.SlugField(max_length=80)
    url = models.URLField(max_length=500)
    secret_ciphertext = models.TextField(editable=False)
    secret_hint = models.CharField(max_length=20, editable=False)
    timeout_seconds = models.PositiveSmallIntegerField(default=10)
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)

    audit_fields = ("name", "url", "secret_hint", "timeout_seconds", "enabled")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="privacy_connector_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def source_name(self) -> str:
        return f"connector.{self.name}"


class ConnectorCall(TenantOwned):
    """One request to a connector for one privacy request and action. An answer that comes by
    callback is kept in `result` until the task that needs it has used it (then cleared)."""

    NEW, PENDING, DONE, FAILED = "new", "pending", "done", "failed"

    request = models.ForeignKey(
        PrivacyRequest, on_delete=models.CASCADE, related_name="connector_calls"
    )
    connector = models.ForeignKey(WebhookConnector, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=12)
    status = models.CharField(max_length=8, default=NEW)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["request", "connector", "action"], name="privacy_connector_call"
            )
        ]


class ErasureRecord(TenantOwned):
    """What one erasure did to one source, without anything personal: the source, the subject
    keys (keyed hashes) it matched by, the strategy per field and the counts. After a restore
    from an older backup, `manage.py replay_erasures --since` applies these again."""

    DONE, FAILED, RETAINED = "done", "failed", "retained"

    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=200)
    key_hashes = models.JSONField(default=list, help_text="The subject keys it matched by.")
    strategies = models.JSONField(default=dict)
    rows = models.PositiveIntegerField(default=0)
    retained = models.JSONField(default=dict, blank=True, help_text="field: legal-hold reason")
    status = models.CharField(max_length=8)
    detail = models.TextField(blank=True)
    executed_at = models.DateTimeField(default=timezone.now)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["executed_at", "pk"]
        indexes = [models.Index(fields=["tenant", "executed_at"], name="privacy_erasure_when")]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "source"],
                condition=models.Q(request__isnull=False),
                name="privacy_erasure_once_per_source",
            )
        ]


class RestrictionKind(models.TextChoices):
    RESTRICTION = "restriction", "restriction of processing (Art. 18)"
    OBJECTION = "objection", "objection (Art. 21)"
    ERASURE = "erasure", "erasure in progress or done (Art. 17): stop all processing"


class SubjectRestriction(TenantOwned):
    """A purpose a subject's data may no longer be processed for, readable by applications
    (`GET /api/v1/privacy/subjects/{id}/restrictions`). Keyed by the subject's keyed hash, so
    it outlives an erasure. Purpose `*` covers every purpose."""

    subject_key = models.CharField(max_length=64)
    kind = models.CharField(max_length=12, choices=RestrictionKind.choices)
    purpose = models.CharField(max_length=80)
    request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    since = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["since", "pk"]
        indexes = [models.Index(fields=["tenant", "subject_key"], name="privacy_restriction_key")]


class RetentionAction(models.TextChoices):
    DELETE = "delete", "delete"
    ANONYMISE = "anonymise", "anonymise (the data map's masking strategies)"


class RetentionPolicy(AuditedModel, TenantOwned):
    """How long one category of data is kept: which model, which age field, how long, and
    whether expired rows are deleted or anonymised (apps/privacy/retention.py)."""

    category = models.SlugField(max_length=80)
    description = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=100, help_text='"app_label.ModelName"')
    age_field = models.CharField(max_length=63)
    keep = models.DurationField(help_text="e.g. 30 00:00:00 for 30 days")
    action = models.CharField(
        max_length=10, choices=RetentionAction.choices, default=RetentionAction.DELETE
    )
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)

    audit_fields = ("category", "model", "age_field", "keep", "action", "enabled")

    class Meta:
        ordering = ["category"]
        verbose_name_plural = "retention policies"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "category"], name="retention_category")
        ]

    def __str__(self) -> str:
        return self.category


class RetentionRun(TenantOwned):
    """One enforcement of a tenant's policies. `cutoffs` are fixed when the run starts, so a run
    resumed after a crash deletes exactly what it set out to; `report` has rows per policy."""

    RUNNING, COMPLETED, FAILED = "running", "completed", "failed"

    local_date = models.DateField()
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=10, default=RUNNING)
    cutoffs = models.JSONField(default=dict)
    report = models.JSONField(default=dict)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    evidence = models.ForeignKey(
        "audit.EvidenceArtifact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at"]


class LegalBasis(models.TextChoices):
    CONSENT = "consent", "Consent (Art. 6(1)(a))"
    CONTRACT = "contract", "Contract (Art. 6(1)(b))"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation (Art. 6(1)(c))"
    VITAL_INTERESTS = "vital_interests", "Vital interests (Art. 6(1)(d))"
    PUBLIC_TASK = "public_task", "Public task (Art. 6(1)(e))"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests (Art. 6(1)(f))"


class ProcessingActivity(AuditedModel, TenantOwned):
    """One entry of the record of processing activities (GDPR Art. 30)."""

    name = models.CharField(max_length=200)
    role = models.CharField(
        max_length=12,
        choices=(("controller", "Controller"), ("processor", "Processor")),
        default="controller",
    )
    purposes = models.TextField()
    legal_basis = models.CharField(max_length=24, choices=LegalBasis.choices)
    subject_categories = models.TextField(help_text="e.g. customers, employees, job applicants")
    data_categories = models.TextField(help_text="e.g. contact details, order history")
    recipients = models.TextField(blank=True)
    third_country_transfers = models.TextField(
        blank=True, help_text="Countries and the safeguards (adequacy decision, SCCs ...)."
    )
    retention = models.TextField(help_text="How long, or the criteria that decide it.")
    security_measures = models.TextField()
    dpo_contact = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "name",
        "role",
        "purposes",
        "legal_basis",
        "subject_categories",
        "data_categories",
        "recipients",
        "third_country_transfers",
        "retention",
        "security_measures",
        "dpo_contact",
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "processing activities"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="processing_activity_name")
        ]

    def __str__(self) -> str:
        return self.name
