from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "apps.compliance"
    label = "compliance"
    verbose_name = "Compliance gate"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        import apps.compliance.tiles  # noqa: F401  (registers the overview tile)
        from apps.compliance.rule_catalog import ensure_catalog_after_migrate

        post_migrate.connect(ensure_catalog_after_migrate, sender=self)
