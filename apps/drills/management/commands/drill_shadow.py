"""Internal: the steps a drill runs *inside* a shadow copy, in a child process whose default
database is the shadow (DATABASE_URL). Prints one JSON document on stdout."""

import json

from django.core import checks
from django.core.management.base import BaseCommand, CommandError
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections

from apps.drills import readiness, rollback


class Command(BaseCommand):
    help = (
        "Used by DR drills, not by hand: readiness | migrate TARGETS_JSON | rolled-back-checks "
        "BACKWARD_JSON, against the database of DATABASE_URL (a drill's shadow copy)."
    )

    # The steps run their own checks; Django's default pre-command checks would only add time.
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("step", choices=["readiness", "migrate", "rolled-back-checks"])
        parser.add_argument("argument", nargs="?", default="[]")

    def handle(self, *args, step: str, argument: str, **options):
        db = connections["default"]
        try:
            payload = json.loads(argument)
        except json.JSONDecodeError as exc:
            raise CommandError(f"argument is not JSON: {exc}") from exc
        if step == "readiness":
            detail, problems = readiness.readiness_problems(db)
            result = {"detail": detail, "problems": problems}
        elif step == "migrate":
            targets = [(app, name) for app, name in payload] or rollback.heads(db)
            steps = rollback.migrate(db, targets)
            # What `manage.py migrate` does after migrating: post_migrate handlers (row-level
            # security, content types, permissions, schedules), here on the shadow.
            emit_post_migrate_signal(verbosity=0, interactive=False, db=db.alias)
            result = {"steps": steps}
        else:
            problems = [
                f"Django check {message.id}: {message.msg}"
                for message in checks.run_checks()
                if message.is_serious()
            ]
            count, smoke = readiness.smoke_queries(db, rollback.state_apps(db))
            problems += smoke
            left = rollback.still_applied(db, payload)
            if left:
                problems.append(f"still applied after the rollback: {', '.join(left)}")
            result = {
                "detail": f"Django checks run; {count} smoke queries with that state's models",
                "problems": problems,
            }
        self.stdout.write(json.dumps(result))
