"""Overrides: a developer's request to merge despite one violation, decided by a second person.

States: PENDING → APPROVED | REJECTED; APPROVED → EXPIRED (beat job) | REVOKED. An approved
override covers its fingerprint in every later run of the same pull request until it expires.
The validity period (`requested_days`) starts at approval, so time spent waiting in the queue
does not eat into it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.audit.models import AuditedModel
from apps.tenancy.scoping import TenantOwned

DEFAULT_DAYS = 14
MAX_DAYS = 90
MIN_REASON_LENGTH = 20


class OverrideState(models.TextChoices):
    PENDING = "PENDING", "Pending"
    APPROVED = "APPROVED", "Approved"
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"
    REVOKED = "REVOKED", "Revoked"


LIVE_STATES = (OverrideState.PENDING, OverrideState.APPROVED)


class Override(AuditedModel, TenantOwned):
    pull_request = models.ForeignKey(
        "compliance.PullRequest", on_delete=models.CASCADE, related_name="overrides"
    )
    violation = models.ForeignKey(
        "compliance.Violation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="overrides",
        help_text="Kept as fingerprint and rule when retention deletes the violation.",
    )
    rule = models.ForeignKey("compliance.Rule", on_delete=models.PROTECT, related_name="+")
    fingerprint = models.CharField(max_length=40)
    state = models.CharField(
        max_length=10, choices=OverrideState.choices, default=OverrideState.PENDING
    )
    reason = models.TextField()
    requested_days = models.PositiveSmallIntegerField(default=DEFAULT_DAYS)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_token = models.ForeignKey(
        "tenancy.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=200)
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_label = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When it expired or was revoked."
    )
    version = models.PositiveIntegerField(default=1)

    audit_fields = (
        "state",
        "rule_id",
        "fingerprint",
        "reason",
        "requested_days",
        "requested_by_label",
        "decided_by_label",
        "decided_at",
        "decision_reason",
        "expires_at",
        "ended_at",
    )

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["pull_request", "fingerprint"],
                condition=models.Q(state__in=["PENDING", "APPROVED"]),
                name="override_one_live_per_fingerprint",
            ),
            models.CheckConstraint(
                condition=models.Q(requested_days__gte=1, requested_days__lte=MAX_DAYS),
                name="override_days_in_range",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "state"], name="override_state"),
            models.Index(
                fields=["expires_at"],
                name="override_approved_expiry",
                condition=models.Q(state="APPROVED"),
            ),
        ]

    def __str__(self) -> str:
        return f"override #{self.pk} {self.rule_id} ({self.state})"
