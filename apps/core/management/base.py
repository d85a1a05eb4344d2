"""Base for operator commands: they act as the system, entitled to every tenant."""

from django.core.management.base import BaseCommand

from apps.tenancy.rls import all_tenants_context
from opsportal.context import Actor, acting_as


class SystemCommand(BaseCommand):
    def execute(self, *args, **options):
        with (
            acting_as(Actor(label=f"manage.py {self.__module__.rsplit('.', 1)[-1]}")),
            all_tenants_context(),
        ):
            return super().execute(*args, **options)
