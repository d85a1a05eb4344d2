from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "apps.alerts"
    label = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from django.db.models.signals import m2m_changed

        import apps.alerts.tiles  # noqa: F401  (registers the overview tile)
        from apps.alerts.metrics import AlertDatabaseCollector
        from apps.alerts.models import Policy
        from apps.alerts.signals import audit_escalation_channels
        from opsportal.metrics import register_database_collector

        register_database_collector(AlertDatabaseCollector())
        m2m_changed.connect(audit_escalation_channels, sender=Policy.escalation_channels.through)
