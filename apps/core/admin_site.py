from django.contrib import admin

from apps.core.overview import tiles_for


class OpsAdminSite(admin.AdminSite):
    site_header = "opsportal"
    site_title = "opsportal"
    index_title = "Operations overview"
    index_template = "admin/ops_index.html"

    def index(self, request, extra_context=None):
        import apps.core.tiles  # noqa: F401  (registers the foundation tiles)

        extra_context = {**(extra_context or {}), "tiles": tiles_for(request)}
        return super().index(request, extra_context)

    def each_context(self, request):
        context = super().each_context(request)
        context["available_tenants"] = getattr(request, "available_tenants", [])
        context["active_tenant"] = getattr(request, "tenant", None)
        return context
