from django.apps import AppConfig


class OverridesConfig(AppConfig):
    name = "apps.overrides"
    label = "overrides"
