"""Drill jobs: a queued run, a drill's own beat schedule, the daily backup, retention and the
sweep after a killed drill.

A drill is not retried automatically (a failed drill is a finding, not a glitch), and a run that
a dead worker left `running` is closed as interrupted by the sweep, never started again."""

from __future__ import annotations

from celery import shared_task

from apps.core.taskbase import OpsTask
from apps.drills import services


class DrillTask(OpsTask):
    autoretry_for = ()
    # The worker must not re-deliver a drill whose process died: the sweep closes it instead.
    reject_on_worker_lost = False


@shared_task(base=DrillTask, name="drills.execute_run")
def execute_run(run_id: int, **_kwargs) -> str:
    return services.execute_run(run_id).status


@shared_task(base=DrillTask, name="drills.run_scheduled")
def run_scheduled(drill_id: int, **_kwargs) -> str | None:
    run = services.run_scheduled(drill_id)
    return run.status if run else None


@shared_task(base=OpsTask, name="drills.daily_backup")
def daily_backup(**_kwargs) -> dict:
    taken = services.backup_portal()
    return {"backup": taken.backup.pk, "bytes": taken.backup.size_bytes}


@shared_task(base=OpsTask, name="drills.purge_backups")
def purge_backups(**_kwargs) -> dict:
    return services.purge_backups()


@shared_task(base=OpsTask, name="drills.sweep")
def sweep(**_kwargs) -> dict:
    return services.sweep()
