"""Tenant lookup shared by the SLO commands."""

from django.core.management.base import CommandError

from apps.tenancy.models import Tenant


def tenant_or_error(slug: str) -> Tenant:
    found = Tenant.objects.filter(slug=slug).first()
    if found is None:
        raise CommandError(f"No tenant {slug!r}.")
    return found
