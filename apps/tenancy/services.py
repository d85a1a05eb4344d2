"""Writes for tenants, memberships and API tokens. Each write is audited (AuditedModel)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.tenancy.authentication import TOKEN_PREFIX, hash_secret
from apps.tenancy.models import ApiToken, Membership, Tenant, default_time_zone
from apps.tenancy.roles import Role
from opsportal.api.locking import check_preconditions


@transaction.atomic
def create_tenant(*, slug: str, name: str, time_zone: str | None = None) -> Tenant:
    tenant = Tenant(slug=slug, name=name, time_zone=time_zone or default_time_zone())
    tenant.full_clean()
    tenant.save(audit_action="tenant.created")
    return tenant


@transaction.atomic
def update_tenant(
    tenant: Tenant,
    *,
    changes: dict[str, Any],
    expected_version: int | None,
    if_match: str | None = None,
) -> Tenant:
    """Rename or re-zone a tenant; a stale version (409) or If-Match (412) changes nothing."""
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    check_preconditions(locked, if_match, expected_version)
    for field, value in changes.items():
        setattr(locked, field, value)
    locked.version += 1
    locked.full_clean()
    locked.save(audit_action="tenant.updated")
    return locked


@transaction.atomic
def add_member(*, tenant: Tenant, user, role: str) -> Membership:
    membership, created = Membership.objects.get_or_create(
        tenant=tenant, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(audit_action="membership.role_changed")
    return membership


def generate_token_secret(marker: str = TOKEN_PREFIX) -> tuple[str, str, str]:
    """(prefix, secret, plaintext token). 8 hex chars of prefix, 256 bits of secret."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return prefix, secret, f"{marker}{prefix}_{secret}"


@transaction.atomic
def create_api_token(
    *, tenant: Tenant, name: str, role: str, expires_at: datetime | None = None, created_by=None
) -> tuple[ApiToken, str]:
    """Create a token; the plaintext is returned once and never stored."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    prefix, secret, plaintext = generate_token_secret()
    token = ApiToken(
        tenant=tenant,
        name=name,
        role=role,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        expires_at=expires_at,
        created_by=created_by,
    )
    token.save(audit_action="api_token.created")
    return token, plaintext


@transaction.atomic
def revoke_api_token(token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(audit_action="api_token.revoked")
    return token


def ensure_user(username: str, *, email: str = "", superuser: bool = False):
    User = get_user_model()
    user, _ = User.objects.get_or_create(
        username=username, defaults={"email": email, "is_staff": True, "is_superuser": superuser}
    )
    return user
