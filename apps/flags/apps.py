from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "apps.flags"
    label = "flags"
    verbose_name = "Feature flags"

    def ready(self) -> None:
        import apps.flags.tiles  # noqa: F401  (registers the overview tile)
