from django.apps import AppConfig


class OverridesConfig(AppConfig):
    name = "apps.overrides"
    label = "overrides"
    verbose_name = "Overrides"

    def ready(self) -> None:
        import apps.overrides.tiles  # noqa: F401  (registers the overview tile)
