"""Admin helpers: tenant scoping through the one mechanism, and read-only evidence screens."""

from django.contrib import admin


class TenantScopedAdmin(admin.ModelAdmin):
    """Rows of the admin's active tenant; superusers in "all tenants" mode see every row."""

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            return queryset.for_tenant(tenant)
        return queryset if request.user.is_superuser else queryset.none()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """New rows can only go to the active tenant (or any, for a superuser in "all")."""
        if db_field.name == "tenant":
            from apps.tenancy.models import Tenant
            from apps.tenancy.selectors import tenants_of

            tenant = getattr(request, "tenant", None)
            if tenant is not None:
                kwargs["queryset"] = Tenant.objects.filter(pk=tenant.pk)
            else:
                kwargs["queryset"] = Tenant.objects.filter(
                    pk__in=[t.pk for t in tenants_of(request.user)]
                )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
