"""Import a flagd flag-definition file into one environment of a tenant; prints a JSON report."""

import json
from pathlib import Path

from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.flags import flagd_import, services
from apps.flags.models import Environment
from apps.tenancy.models import Tenant


class Command(SystemCommand):
    help = (
        "Import a flagd flag file (https://flagd.dev/reference/flag-definitions/) into a "
        "tenant's environment. Flags that do not fit are reported, not imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--environment", default="development")
        parser.add_argument("--dry-run", action="store_true", help="report only, write nothing")

    def handle(self, *args, file, tenant, environment, dry_run, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant {tenant!r}.")
        services.ensure_environments(found)
        target = Environment.objects.filter(tenant=found, key=environment).first()
        if target is None:
            raise CommandError(f"No environment {environment!r} in tenant {tenant!r}.")
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        try:
            report = flagd_import.import_document(found, target, text, dry_run=dry_run)
        except services.FlagError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(report.as_dict(), indent=2))
