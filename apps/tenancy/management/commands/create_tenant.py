from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.tenancy.services import create_tenant


class Command(SystemCommand):
    help = "Create a tenant."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--time-zone", default=None, help="default: DEFAULT_TENANT_TIME_ZONE")

    def handle(self, *args, **options):
        try:
            tenant = create_tenant(
                slug=options["slug"],
                name=options["name"] or options["slug"],
                time_zone=options["time_zone"],
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        self.stdout.write(f"created tenant {tenant.slug} (id {tenant.pk})")
