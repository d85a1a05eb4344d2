"""Base classes for tenant-scoped API views."""

from __future__ import annotations

from rest_framework import generics

from opsportal.dbrouter import read_replica


class TenantScopedMixin:
    """Reads go through the model's `for_tenant` (the one scoping mechanism); another tenant's
    object is therefore a 404, never a 403, so its existence is not revealed."""

    model = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return self.model.objects.none()
        return self.model.objects.for_tenant(self.request.tenant)


class TenantListView(TenantScopedMixin, generics.ListAPIView):
    """Lists read from the replica when DATABASE_REPLICA_URL is set (lag is fine for lists)."""

    def get_queryset(self):
        return read_replica(super().get_queryset())


class TenantDetailView(TenantScopedMixin, generics.RetrieveAPIView):
    pass
