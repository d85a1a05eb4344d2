from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps.audit.models import AuditedModel
from apps.tenancy.roles import Role
from apps.tenancy.scoping import TenantOwned


def default_time_zone() -> str:
    return settings.DEFAULT_TENANT_TIME_ZONE


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"Unknown time zone {value!r}.")


class Tenant(AuditedModel):
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone]
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_fields = ("slug", "name", "time_zone", "version")
    audit_tenant_field = "pk"

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(AuditedModel, TenantOwned):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=32, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    audit_fields = ("user_id", "role")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant_id} ({self.role})"


class ApiToken(AuditedModel, TenantOwned):
    """A bearer token. Only the SHA-256 of the secret is stored; `prefix` finds the row."""

    name = models.CharField(max_length=100)
    role = models.CharField(max_length=32, choices=Role.choices)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    audit_fields = ("name", "role", "prefix", "expires_at", "revoked_at")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} (ops_{self.prefix}…)"

    @property
    def is_authenticated(self) -> bool:
        return True
