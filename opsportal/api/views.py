"""Base classes for tenant-scoped API views."""

from __future__ import annotations

from rest_framework import generics


class TenantScopedMixin:
    """Reads go through the model's `for_tenant` (the one scoping mechanism); another tenant's
    object is therefore a 404, never a 403, so its existence is not revealed."""

    model = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return self.model.objects.none()
        return self.model.objects.for_tenant(self.request.tenant)


class TenantListView(TenantScopedMixin, generics.ListAPIView):
    pass


class TenantDetailView(TenantScopedMixin, generics.RetrieveAPIView):
    pass
