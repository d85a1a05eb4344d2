from django.apps import AppConfig


class IrreversibleAppConfig(AppConfig):
    """Installed only by the rollback tests: its second migration cannot be undone."""

    name = "tests.drills.irreversible_app"
    label = "irreversible_app"
