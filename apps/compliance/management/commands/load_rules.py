"""Load a rule catalog file: creates missing rules, updates changed ones, never deletes one."""

from django.core.management.base import CommandError

from apps.compliance.rule_catalog import DEFAULT_CATALOG, CatalogError
from apps.compliance.services import load_rules
from apps.core.management.base import SystemCommand


class Command(SystemCommand):
    help = "Load the compliance rule catalog from a YAML file (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=str(DEFAULT_CATALOG))

    def handle(self, *args, file, **options):
        try:
            report = load_rules(file)
        except CatalogError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged"
            + (f" (updated: {', '.join(report.updated)})" if report.updated else "")
        )
