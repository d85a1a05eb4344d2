from apps.core.management.base import SystemCommand
from apps.core.schedules import sync_schedules


class Command(SystemCommand):
    help = "Create the periodic tasks declared in apps/core/schedules.py that do not exist yet."

    def handle(self, *args, **options):
        created = sync_schedules()
        self.stdout.write(f"schedules: {len(created)} created")
