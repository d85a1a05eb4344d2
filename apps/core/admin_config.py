from django.contrib.admin.apps import AdminConfig


class OpsAdminConfig(AdminConfig):
    default_site = "apps.core.admin_site.OpsAdminSite"
