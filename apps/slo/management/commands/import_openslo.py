"""Import services and SLOs from an OpenSLO v1 YAML file; prints a JSON report."""

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from apps.core.management.base import SystemCommand
from apps.slo import openslo, services
from apps.slo.management.commands._tenant import tenant_or_error


class _DryRun(Exception):
    pass


class Command(SystemCommand):
    help = (
        "Import services and SLOs from OpenSLO v1 YAML (kinds Service, SLO, SLI). All or "
        "nothing; unsupported features are listed in the report, never dropped silently."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--dry-run", action="store_true", help="report only, write nothing")

    def handle(self, *args, file, tenant, dry_run, **options):
        target = tenant_or_error(tenant)
        try:
            text = Path(file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        try:
            with transaction.atomic():
                result = services.import_openslo(target, text)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        except openslo.OpenSLOError as exc:
            raise CommandError(
                "Nothing imported:\n" + "\n".join(f"  {problem}" for problem in exc.errors)
            ) from exc
        except ValidationError as exc:
            raise CommandError(f"Nothing imported: {exc}") from exc
        report = {
            "dry_run": dry_run,
            "services_created": result.services_created,
            "services_updated": result.services_updated,
            "slos_created": result.slos_created,
            "slos_updated": result.slos_updated,
            "unsupported": [str(problem) for problem in result.unsupported],
        }
        self.stdout.write(json.dumps(report, indent=2))
