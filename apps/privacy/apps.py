from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "apps.privacy"
    label = "privacy"
    verbose_name = "Privacy requests"

    def ready(self) -> None:
        import apps.privacy.tiles  # noqa: F401  (registers the overview tile)
