from django.apps import AppConfig


class DrillsConfig(AppConfig):
    name = "apps.drills"
    label = "drills"
    verbose_name = "DR drills"

    def ready(self) -> None:
        import apps.drills.tiles  # noqa: F401  (registers the overview tile)
