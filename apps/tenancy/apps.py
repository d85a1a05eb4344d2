from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "apps.tenancy"
    label = "tenancy"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from apps.tenancy import rls, schema  # noqa: F401  (registers the OpenAPI scheme)

        connection_created.connect(rls.on_connection_created)
        post_migrate.connect(rls.apply_row_level_security, sender=self)
