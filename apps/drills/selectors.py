"""Reads of the drills app: drills with their last result and next run, the RTO trend, the
overview tile's figures, and a stored run's report as text."""

from __future__ import annotations

from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from apps.drills.models import Backup, BackupStatus, Drill, DrillRun, RunStatus
from apps.drills.report import DrillReport
from apps.drills.services import next_run_at


def with_last_run(drills: QuerySet) -> QuerySet:
    """Drills annotated with their latest finished run's id, status, time, RTO, RPO and backup
    size (one query, for the admin list)."""
    latest = DrillRun.objects.filter(drill=OuterRef("pk"), finished_at__isnull=False).order_by(
        "-finished_at"
    )
    return drills.annotate(
        last_run_id=Subquery(latest.values("pk")[:1]),
        last_status=Subquery(latest.values("status")[:1]),
        last_finished_at=Subquery(latest.values("finished_at")[:1]),
        last_rto=Subquery(latest.values("rto_seconds")[:1]),
        last_rpo=Subquery(latest.values("rpo_seconds")[:1]),
        last_backup_bytes=Subquery(latest.values("backup_bytes")[:1]),
    )


def rto_trend(drill: Drill, limit: int = 26) -> list[tuple[datetime, float | None, bool]]:
    """(finished at, RTO seconds, passed) of the drill's latest runs, oldest first."""
    runs = (
        DrillRun.objects.filter(drill=drill, finished_at__isnull=False)
        .exclude(status__in=[RunStatus.CANCELED, RunStatus.REFUSED])
        .order_by("-finished_at")
        .values_list("finished_at", "rto_seconds", "status")[:limit]
    )
    return [(at, rto, status == RunStatus.PASSED) for at, rto, status in reversed(list(runs))]


def latest_backup_of_tenant(tenant) -> Backup | None:
    return (
        Backup.objects.visible_to(tenant)
        .filter(status=BackupStatus.OK)
        .order_by("-snapshot_at")
        .first()
    )


def overview(tenant) -> dict:
    """The tile's figures; `latest` is the drill whose run finished last, annotated like the
    admin list (`with_last_run`)."""
    drills = list(with_last_run(Drill.objects.for_tenant(tenant).order_by("name")))
    run_drills = [d for d in drills if d.last_run_id is not None]
    backup = latest_backup_of_tenant(tenant)
    upcoming = [at for d in drills if (at := next_run_at(d))]
    return {
        "drills": len(drills),
        "failing": sum(1 for d in run_drills if d.last_status != RunStatus.PASSED),
        "latest": max(run_drills, key=lambda d: d.last_finished_at, default=None),
        "backup_age_seconds": (timezone.now() - backup.snapshot_at).total_seconds()
        if backup
        else None,
        "next_run": min(upcoming) if upcoming else None,
    }


def report_text(run: DrillRun) -> str:
    if not run.report:
        return f"Run {run.pk}: {run.status}" + (f" - {run.error}" if run.error else "")
    return DrillReport.from_dict(run.report).render_text()
