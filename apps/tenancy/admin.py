from django.contrib import admin, messages

from apps.core.admin_mixins import TenantScopedAdmin
from apps.tenancy import services
from apps.tenancy.models import ApiToken, Membership, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "time_zone", "version", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["version", "created_at"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant = getattr(request, "tenant", None)
        return queryset.filter(pk=tenant.pk) if tenant is not None else queryset


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username"]


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "role", "prefix", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["name", "prefix"]
    fields = [
        "tenant",
        "name",
        "role",
        "expires_at",
        "prefix",
        "created_by",
        "created_at",
        "revoked_at",
        "last_used_at",
    ]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        always = ["prefix", "created_by", "created_at", "revoked_at", "last_used_at"]
        return always + (["tenant", "role"] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(audit_action="api_token.updated")
            return
        token, plaintext = services.create_api_token(
            tenant=obj.tenant,
            name=obj.name,
            role=obj.role,
            expires_at=obj.expires_at,
            created_by=request.user,
        )
        obj.pk = token.pk
        messages.warning(
            request, f"Token created. Copy it now, it will not be shown again: {plaintext}"
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            services.revoke_api_token(token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")
