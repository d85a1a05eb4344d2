"""Rebuild the daily compliance trends of one day (or a range) for every tenant."""

from datetime import date, timedelta

from django.core.management.base import CommandError

from apps.compliance import trends
from apps.compliance.selectors import today_for
from apps.core.management.base import SystemCommand
from apps.tenancy.models import Tenant


class Command(SystemCommand):
    help = "Rebuild daily compliance trends (idempotent): --day YYYY-MM-DD, or --days N back."

    def add_arguments(self, parser):
        parser.add_argument("--day", help="one tenant-local day, YYYY-MM-DD (default: today)")
        parser.add_argument("--days", type=int, default=1, help="this many days ending at --day")
        parser.add_argument("--tenant", help="slug (default: every tenant)")

    def handle(self, *args, day, days, tenant, **options):
        try:
            last = date.fromisoformat(day) if day else None
        except ValueError as exc:
            raise CommandError("--day must be YYYY-MM-DD") from exc
        if not 1 <= days <= 800:
            raise CommandError("--days must be between 1 and 800")
        tenants = Tenant.objects.all() if not tenant else Tenant.objects.filter(slug=tenant)
        if not tenants.exists():
            raise CommandError(f"no tenant {tenant!r}")
        for each in tenants:
            end = last or today_for(each)  # "today" is the tenant's, in its time zone
            rows = sum(
                trends.rebuild_day(each, end - timedelta(days=offset)) for offset in range(days)
            )
            self.stdout.write(f"{each.slug}: {rows} rule-day row(s) over {days} day(s)")
