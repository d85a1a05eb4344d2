"""Print a tenant's services and SLOs as OpenSLO v1 YAML."""

from apps.core.management.base import SystemCommand
from apps.slo import services
from apps.slo.management.commands._tenant import tenant_or_error


class Command(SystemCommand):
    help = "Export a tenant's services and SLOs as OpenSLO v1 YAML (stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")

    def handle(self, *args, tenant, **options):
        self.stdout.write(services.export_openslo(tenant_or_error(tenant)), ending="")
