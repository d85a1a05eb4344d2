"""Run a drill in the foreground and print its report; exit non-zero when it fails."""

import signal

from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.drills import engine, services
from apps.drills.models import Drill, DrillKind, TargetKind
from apps.tenancy.models import Tenant


class Command(SystemCommand):
    help = (
        "Run a DR drill now and print its report (phases with timings, RTO, RPO, per-table "
        "verification, pass/fail). Exits 1 when the drill fails or is refused. --dry-run prints "
        "the steps and touches nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--kind",
            required=True,
            choices=[DrillKind.BACKUP_RESTORE, DrillKind.MIGRATION_ROLLBACK],
        )
        parser.add_argument(
            "--target",
            default="",
            help="the drill's name (default: the tenant's drill of this kind on the portal's "
            "own database, created with the defaults if there is none)",
        )
        parser.add_argument("--tenant", default="", help="tenant slug (default: the only one)")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument(
            "--use-latest-backup", action="store_true", help="restore the latest stored backup"
        )
        parser.add_argument("--to", default="", help="migration_rollback: the state to go back to")

    def handle(self, *args, kind, target, tenant, dry_run, use_latest_backup, to, **options):
        drill = self._drill(kind, target, tenant, create=not dry_run)
        overrides = {"use_latest_backup": use_latest_backup or None, "rollback_to": to or None}
        if dry_run:
            target_obj = services.target_of(drill) if drill.pk else _portal()
            report = engine.execute(
                target_obj, services.options_for(drill, dry_run=True, **overrides)
            )
            self.stdout.write(report.render_text())
            if report.error:
                raise CommandError(report.error)
            return
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            run = services.run_in_foreground(
                drill, trigger="command", requested_by="manage.py run_drill", **overrides
            )
        except services.RunConflict as exc:
            raise CommandError(str(exc)) from exc
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write(_render(run))
        if run.status != "passed":
            raise CommandError(f"drill {run.status}: {run.error or 'see the mismatches above'}")

    def _drill(self, kind: str, name: str, slug: str, *, create: bool) -> Drill:
        tenant = _tenant(slug)
        drills = Drill.objects.for_tenant(tenant)
        if name:
            drill = drills.filter(name=name).first()
            if drill is None:
                raise CommandError(f"No drill {name!r} in tenant {tenant.slug}.")
            if drill.kind != kind:
                raise CommandError(f"Drill {name!r} is a {drill.kind} drill, not {kind}.")
            return drill
        drill = drills.filter(kind=kind, target=TargetKind.PORTAL).order_by("pk").first()
        if drill is not None:
            return drill
        drill = Drill(tenant=tenant, name=f"portal-{kind.replace('_', '-')}", kind=kind)
        if kind == DrillKind.MIGRATION_ROLLBACK:
            drill.schedule = "0 3 * * 6"  # an hour after the restore drill, never at once
        if create:
            services.save_drill(drill, may_target_portal=True)
        return drill


class _Terminated(SystemExit):
    pass


def _terminate(signum, frame):
    """SIGTERM becomes an exception, so the drill's cleanup (dropping the shadow) runs. A
    second SIGTERM during that cleanup is ignored; SIGKILL still works, and the sweep drops
    what a killed drill left."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Terminated(128 + signum)


def _portal():
    from apps.drills.targets import portal_target

    return portal_target()


def _tenant(slug: str) -> Tenant:
    if slug:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}.")
        return tenant
    tenants = list(Tenant.objects.order_by("pk")[:2])
    if len(tenants) != 1:
        raise CommandError("Name the tenant with --tenant (there is not exactly one).")
    return tenants[0]


def _render(run) -> str:
    from apps.drills.selectors import report_text

    return report_text(run)
