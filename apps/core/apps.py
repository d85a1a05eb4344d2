from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        import opsportal.celery  # the portal's Celery app becomes the current app
        import opsportal.checks  # noqa: F401  (registers the deploy checks)
        from apps.core.schedules import sync_schedules_after_migrate

        post_migrate.connect(sync_schedules_after_migrate, sender=self)
