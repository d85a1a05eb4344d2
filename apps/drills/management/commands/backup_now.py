"""Take a backup of the portal's own database now, as the daily beat job does."""

from pathlib import Path

from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.drills import services
from apps.drills.pg_backend import describe_connection_error


class Command(SystemCommand):
    help = (
        "Back up the portal's own database into BACKUP_DIR (pg_dump custom format, or SQLite's "
        "online backup API) and record its SHA-256, size and duration."
    )

    def handle(self, *args, **options):
        try:
            taken = services.backup_portal()
        except Exception as exc:
            raise CommandError(f"backup failed: {describe_connection_error(exc)}") from exc
        backup = taken.backup
        self.stdout.write(
            f"backup {backup.pk}: {backup.path}\n"
            f"  size {backup.size_bytes:,} bytes, sha256 {backup.sha256}\n"
            f"  {len(taken.manifest.tables)} tables, "
            f"{sum(t.rows for t in taken.manifest.tables.values()):,} rows, "
            f"data as of {backup.snapshot_at:%Y-%m-%d %H:%M:%S %Z}, "
            f"took {backup.duration_seconds:.2f} s\n"
            f"  keeps {Path(backup.path).parent} for the retention period (BACKUP_RETENTION_DAYS)"
        )
