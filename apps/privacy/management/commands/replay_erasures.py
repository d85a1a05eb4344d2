"""Apply recorded erasures again after a restore from an older backup."""

from datetime import UTC, datetime, timedelta

from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.privacy import replay
from apps.tenancy.models import Tenant


class Command(SystemCommand):
    help = (
        "After the database (or an external source) was restored from a backup older than some "
        "erasures, apply every erasure recorded since DATE again, so nobody erased comes back. "
        "Idempotent; webhook connectors replay their own erasures."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            required=True,
            help="YYYY-MM-DD, the backup's date: erasures from the day before on are replayed "
            "(replaying more is harmless, and no time zone's date is missed)",
        )
        parser.add_argument("--tenant", default="", help="tenant slug (default: every tenant)")

    def handle(self, *args, since, tenant, **options):
        try:
            since_at = datetime.fromisoformat(since).replace(tzinfo=UTC) - timedelta(days=1)
        except ValueError:
            raise CommandError(f"--since {since!r} is not a date (YYYY-MM-DD).") from None
        chosen = None
        if tenant:
            chosen = Tenant.objects.filter(slug=tenant).first()
            if chosen is None:
                raise CommandError(f"No tenant {tenant!r}.")
        report = replay.replay_erasures(since_at, tenant=chosen)
        for source, rows in sorted(report.rows.items()):
            self.stdout.write(f"{source}: {rows} row(s) erased again")
        for source, reason in sorted(report.failed.items()):
            self.stderr.write(f"{source}: FAILED, {reason}")
        total = sum(report.rows.values())
        self.stdout.write(
            f"replayed the erasures recorded since {since_at:%Y-%m-%d}: {total} row(s) erased again"
        )
        if report.failed:
            raise CommandError(
                f"{len(report.failed)} source(s) could not be replayed; fix them and run again"
            )
