"""Subjects with data but no consent record for a required purpose."""

import json

from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.privacy import consents
from apps.tenancy.models import Tenant


class Command(SystemCommand):
    help = (
        "Report subjects that have data in the data map's sources but no consent record for a "
        "purpose the tenant marked required (privacy settings). Exits 1 when there are gaps."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="", help="tenant slug (default: every tenant)")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the report as JSON"
        )

    def handle(self, *args, tenant, as_json: bool, **options):
        tenants = Tenant.objects.filter(slug=tenant) if tenant else Tenant.objects.all()
        if tenant and not tenants.exists():
            raise CommandError(f"No tenant {tenant!r}.")
        reports = {t.slug: consents.completeness(t) for t in tenants.order_by("slug")}
        gaps = sum(len(v) for r in reports.values() for v in r["missing"].values())
        if as_json:
            self.stdout.write(json.dumps(reports, indent=2, sort_keys=True))
        else:
            for slug, report in reports.items():
                self.stdout.write(
                    f"{slug}: {report['subjects_with_data']} subject(s) with data; required "
                    f"purposes: {', '.join(report['required_purposes']) or 'none'}"
                )
                for purpose, subjects in report["missing"].items():
                    self.stdout.write(f"  {purpose}: {len(subjects)} without a consent record")
                    for subject in subjects:
                        self.stdout.write(f"    {subject}")
                for problem in report["unreachable_sources"]:
                    self.stdout.write(f"  not checked: {problem}")
        if gaps:
            raise CommandError(f"{gaps} missing consent record(s)")
