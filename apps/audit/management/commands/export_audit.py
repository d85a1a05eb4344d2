import hashlib
import json
from pathlib import Path

from django.utils.dateparse import parse_datetime

from apps.audit.selectors import export_lines
from apps.core.management.base import SystemCommand


class Command(SystemCommand):
    help = "Export audit events as JSON lines plus a manifest with the SHA-256 of the file."

    def add_arguments(self, parser):
        parser.add_argument("--since", default=None, help="ISO 8601 datetime (inclusive)")
        parser.add_argument("--until", default=None, help="ISO 8601 datetime (exclusive)")
        parser.add_argument("--output", type=Path, required=True, help="the .jsonl file")

    def handle(self, *args, **options):
        since = parse_datetime(options["since"]) if options["since"] else None
        until = parse_datetime(options["until"]) if options["until"] else None
        digest, count = hashlib.sha256(), 0
        with options["output"].open("w") as out:
            for line in export_lines(since, until):
                out.write(line + "\n")
                digest.update((line + "\n").encode())
                count += 1
        manifest = {
            "file": options["output"].name,
            "events": count,
            "sha256": digest.hexdigest(),
            "since": options["since"],
            "until": options["until"],
        }
        manifest_path = options["output"].with_suffix(".manifest.json")
        manifest_path.write_text(json.dumps(manifest, indent=2))
        self.stdout.write(f"exported {count} events to {options['output']} ({manifest_path})")
