"""Print the migration rollback plan to a state and its irreversible steps; touches nothing."""

from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.drills import rollback


class Command(SystemCommand):
    help = (
        "Print which migrations a rollback to STATE would unapply, in order, and which of them "
        "are irreversible (RunPython without reverse code, RunSQL without reverse SQL). STATE is "
        "steps=N, app=migration[,app=migration...] or a state file from `migration_state`. "
        "Never touches the database; exits 1 when a step is irreversible."
    )

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, dest="state")
        parser.add_argument(
            "--dry-run", action="store_true", help="accepted for symmetry: this never migrates"
        )

    def handle(self, *args, state, dry_run, **options):
        try:
            plan = rollback.plan(state)
        except rollback.StateError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(plan.render_text())
        if plan.irreversible:
            raise CommandError(f"{len(plan.irreversible)} irreversible step(s): see above")
