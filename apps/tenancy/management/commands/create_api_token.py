from datetime import timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from apps.core.management.base import SystemCommand
from apps.tenancy.models import Tenant
from apps.tenancy.roles import Role
from apps.tenancy.services import create_api_token


class Command(SystemCommand):
    help = "Create an API token for a tenant. The token is printed once and never stored."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        days = options["expires_in_days"]
        expires = timezone.now() + timedelta(days=days) if days else None
        token, plaintext = create_api_token(
            tenant=tenant, name=options["name"], role=options["role"], expires_at=expires
        )
        self.stderr.write(
            f"token {token.name} (prefix {token.prefix}, role {token.role}); "
            "store it now, it is not shown again:"
        )
        self.stdout.write(plaintext)
