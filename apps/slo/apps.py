from django.apps import AppConfig


class SloConfig(AppConfig):
    name = "apps.slo"
    label = "slo"
    verbose_name = "SLOs and canaries"

    def ready(self) -> None:
        import apps.slo.tiles  # noqa: F401  (registers the overview tile)
