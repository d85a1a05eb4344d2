"""The one scoping mechanism for tenant-owned data.

Every tenant-owned model inherits `TenantOwned`, whose manager offers `for_tenant(tenant)`. API
views, admin classes and selectors read through it; nothing filters on `tenant_id` by hand. On
PostgreSQL the same rows are also guarded by row-level security (`apps.tenancy.rls`).
"""

from __future__ import annotations

from django.db import models


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant) -> TenantQuerySet:
        if tenant is None:
            return self.none()
        return self.filter(tenant_id=tenant.pk if hasattr(tenant, "pk") else tenant)


class TenantOwned(models.Model):
    """Abstract base: a row that belongs to exactly one tenant."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.PROTECT, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


def tenant_owned_models() -> list[type[models.Model]]:
    from django.apps import apps

    return [
        model
        for model in apps.get_models()
        if any(f.name == "tenant" and f.is_relation for f in model._meta.concrete_fields)
        and model._meta.managed
    ]
