from apps.core.management.base import SystemCommand
from apps.core.services import drain_outbox


class Command(SystemCommand):
    help = "Send pending outbox messages to the broker now (after an outage)."

    def handle(self, *args, **options):
        result = drain_outbox(older_than_seconds=0)
        self.stdout.write(f"outbox: {result['sent']} sent, {result['failed']} still pending")
