"""Reads for overrides: who may decide, and what the queue holds."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from apps.overrides.models import Override, OverrideState
from apps.tenancy.models import Tenant
from apps.tenancy.roles import Role
from apps.tenancy.selectors import has_role_in_active_tenant

EXPIRING_SOON = timedelta(days=3)
DECIDING_ROLES = (Role.COMPLIANCE_ADMIN, Role.TENANT_ADMIN)


def can_decide(user, request) -> bool:
    """A superuser, or a compliance admin / tenant admin of the admin's active tenant."""
    return has_role_in_active_tenant(user, request, DECIDING_ROLES)


def pending(tenant: Tenant) -> QuerySet[Override]:
    return Override.objects.for_tenant(tenant).filter(state=OverrideState.PENDING)


def expiring_soon(queryset: QuerySet[Override], now: datetime | None = None) -> QuerySet[Override]:
    """Approved overrides that expire within EXPIRING_SOON (3 days): the admin highlights them."""
    now = now or timezone.now()
    return queryset.filter(
        state=OverrideState.APPROVED, expires_at__gt=now, expires_at__lte=now + EXPIRING_SOON
    )
