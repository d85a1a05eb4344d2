from pathlib import Path

from django.core.management.base import CommandError

from apps.audit.selectors import verify_chains
from apps.core.management.base import SystemCommand


class Command(SystemCommand):
    help = "Verify every audit hash chain; with --checkpoint, also that it ends in a recorded head."

    def add_arguments(self, parser):
        parser.add_argument("--checkpoint", type=Path, default=None)

    def handle(self, *args, **options):
        result = verify_chains(options["checkpoint"])
        if not result.ok:
            raise CommandError("audit chain broken: " + " | ".join(result.problems))
        self.stdout.write(f"audit chain OK: {result.verified} events verified")
