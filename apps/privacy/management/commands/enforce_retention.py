"""Enforce retention policies now, or show what they would delete."""

from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.privacy import retention
from apps.tenancy.models import Tenant


class Command(SystemCommand):
    help = (
        "Delete (or anonymise) what each tenant's retention policies say has expired, in batches "
        "of at most 5,000 rows per transaction; resumes a run that was interrupted. --dry-run "
        "counts the rows and changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--tenant", default="", help="tenant slug (default: every tenant)")

    def handle(self, *args, dry_run, tenant, **options):
        tenants = Tenant.objects.filter(slug=tenant) if tenant else Tenant.objects.all()
        if tenant and not tenants.exists():
            raise CommandError(f"No tenant {tenant!r}.")
        for current in tenants.order_by("slug"):
            run = retention.enforce(current, dry_run=dry_run)
            verb = "would delete" if dry_run else "deleted"
            self.stdout.write(f"{current.slug}: run {run.pk} ({run.status})")
            for category, entry in sorted(run.report["policies"].items()):
                self.stdout.write(
                    f"  {category}: {verb} {entry['rows']} row(s) older than {entry['cutoff'][:10]}"
                    + (f" in {entry['batches']} batch(es)" if not dry_run else "")
                )
