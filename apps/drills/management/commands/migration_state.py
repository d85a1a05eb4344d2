"""Write the database's migration state, to keep with a release tag for a later rollback."""

import json
from pathlib import Path

from apps.core.management.base import SystemCommand
from apps.drills import rollback


class Command(SystemCommand):
    help = (
        "Print (or write to --output) the latest applied migration of every portal app as JSON: "
        "the state file `rollback_plan --to FILE` and rollback drills go back to."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", default="")

    def handle(self, *args, output, **options):
        text = json.dumps({"migrations": rollback.current_state()}, indent=2, sort_keys=True)
        if output:
            Path(output).write_text(text + "\n")
            self.stdout.write(f"wrote {output}")
        else:
            self.stdout.write(text)
