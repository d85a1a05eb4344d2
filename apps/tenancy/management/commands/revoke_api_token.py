from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.tenancy.models import ApiToken
from apps.tenancy.services import revoke_api_token


class Command(SystemCommand):
    help = "Revoke an API token by its prefix (the 8 characters after ops_)."

    def add_arguments(self, parser):
        parser.add_argument("prefix")

    def handle(self, *args, **options):
        token = ApiToken.objects.filter(prefix=options["prefix"]).first()
        if token is None:
            raise CommandError(f"No token with prefix {options['prefix']!r}.")
        revoke_api_token(token)
        self.stdout.write(f"revoked token {token.name} ({token.prefix})")
