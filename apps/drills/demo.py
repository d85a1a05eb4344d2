"""Demo drills: a weekly backup-and-restore drill of the portal's own database, run twice so the
tile and the RTO trend have real figures, and a migration rollback rehearsal (steps=1) that is
scheduled but left for the operator to run from the admin."""

from __future__ import annotations

from apps.drills import services
from apps.drills.models import Drill, DrillKind, RunStatus
from apps.tenancy.models import Tenant


def load_demo(tenant: Tenant, *, runs: int = 2) -> list[str]:
    """Create the demo drills (once) and run the restore drill; the statuses of those runs."""
    if Drill.objects.for_tenant(tenant).exists():
        return []
    restore = services.save_drill(
        Drill(tenant=tenant, name="portal-weekly-restore", kind=DrillKind.BACKUP_RESTORE),
        may_target_portal=True,
    )
    services.save_drill(
        Drill(
            tenant=tenant,
            name="portal-rollback-rehearsal",
            kind=DrillKind.MIGRATION_ROLLBACK,
            schedule="0 3 * * 6",
            rto_target_seconds=30 * 60,
        ),
        may_target_portal=True,
    )
    statuses = []
    for _ in range(runs):
        run = services.run_in_foreground(restore, trigger="demo", requested_by="seed_demo")
        statuses.append(run.status)
        if run.status != RunStatus.PASSED:
            break
    return statuses
