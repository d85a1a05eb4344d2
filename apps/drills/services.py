"""Writes of the drills app: drills (validated, DSN encrypted, schedule synced into beat), runs
(requested, executed, canceled, finished with evidence and alerts), daily backups, retention and
the sweep that cleans up after a killed drill."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from apps.alerts.services import raise_alert, resolve_alert
from apps.audit.hashing import to_json_value
from apps.audit.services import record_event, store_evidence
from apps.core.services import enqueue
from apps.drills import backups, engine, rollback
from apps.drills.models import (
    Drill,
    DrillKind,
    DrillRun,
    RunStatus,
    TargetKind,
)
from apps.drills.report import DrillReport
from apps.drills.targets import Target, external_target, portal_target, redact, validate_dsn
from apps.tenancy.rls import all_tenants_context
from opsportal import crypto

logger = logging.getLogger(__name__)

ALERT_SOURCE = "drills"
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
# What the API and the admin may set (the DSN travels apart: it is encrypted, never echoed).
EDITABLE = tuple(field for field in Drill.audit_fields if field != "dsn_hint")


class RunConflict(Exception):
    """A run is already queued or running: drills never run at once."""


# --- drills ---------------------------------------------------------------------------------


def parse_schedule(expression: str) -> dict[str, str]:
    parts = (expression or "").split()
    if len(parts) != 5:
        raise ValidationError(
            {"schedule": "Write five cron fields: minute hour day-of-month month day-of-week."}
        )
    fields = dict(zip(CRON_FIELDS, parts, strict=True))
    try:
        crontab(**fields)
    except (ValueError, TypeError) as exc:
        raise ValidationError({"schedule": f"Not a valid cron expression: {exc}"}) from None
    return fields


def next_run_at(drill: Drill, now: datetime | None = None) -> datetime | None:
    if not drill.enabled:
        return None
    now = now or timezone.now()
    zone = ZoneInfo(drill.time_zone)
    local_now = now.astimezone(zone)
    schedule = crontab(**parse_schedule(drill.schedule), nowfun=lambda: local_now)
    schedule.tz = zone
    return (local_now + schedule.remaining_estimate(local_now)).replace(second=0, microsecond=0)


def clean_drill(drill: Drill, *, dsn: str | None, may_target_portal: bool) -> str | None:
    """Validate a drill before saving; returns the normalised DSN to store (or None)."""
    errors: dict[str, str] = {}
    if drill.target == TargetKind.PORTAL and not may_target_portal:
        errors["target"] = (
            "Only a superuser may drill the portal's own database (it holds every tenant)."
        )
    normalised = None
    if drill.target == TargetKind.EXTERNAL:
        if dsn:
            try:
                normalised = validate_dsn(dsn)
            except ValidationError as exc:
                errors.update({k: " ".join(v) for k, v in exc.message_dict.items()})
        elif not drill.dsn_ciphertext:
            errors["dsn"] = "An external target needs a PostgreSQL DSN."
    if drill.kind == DrillKind.MIGRATION_ROLLBACK:
        if drill.target != TargetKind.PORTAL:
            errors["kind"] = "A migration rollback rehearsal runs on the portal's own database."
        else:
            try:
                rollback.parse_state(drill.rollback_to)
            except rollback.StateError as exc:
                errors["rollback_to"] = str(exc)
    try:
        parse_schedule(drill.schedule)
    except ValidationError as exc:
        errors.update({k: " ".join(v) for k, v in exc.message_dict.items()})
    try:
        drill.full_clean(exclude=["tenant", "dsn_ciphertext", "dsn_hint"], validate_unique=False)
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            errors.setdefault(key, " ".join(messages))
    if Drill.objects.filter(tenant_id=drill.tenant_id, name=drill.name).exclude(pk=drill.pk):
        errors["name"] = "A drill with this name exists."
    if errors:
        raise ValidationError(errors)
    return normalised


def save_drill(drill: Drill, *, dsn: str | None = None, may_target_portal: bool = False) -> Drill:
    """Validate, encrypt the DSN, save (audited) and keep its beat schedule in step."""
    normalised = clean_drill(drill, dsn=dsn, may_target_portal=may_target_portal)
    if normalised:
        drill.dsn_ciphertext = crypto.encrypt(normalised)
        drill.dsn_hint = redact(normalised)
    if drill.target == TargetKind.PORTAL:
        drill.dsn_ciphertext = ""
        drill.dsn_hint = ""
    with transaction.atomic():
        if drill.pk:
            drill.version = F("version") + 1
        drill.save(audit_action="drill.saved")
        drill.refresh_from_db(fields=["version"])
        sync_schedule(drill)
    return drill


def sync_schedule(drill: Drill) -> None:
    """One django-celery-beat entry per drill, in the drill's time zone (editable there too)."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    cron, _ = CrontabSchedule.objects.get_or_create(
        **parse_schedule(drill.schedule), timezone=drill.time_zone
    )
    PeriodicTask.objects.update_or_create(
        name=schedule_name(drill),
        defaults={
            "task": "drills.run_scheduled",
            "crontab": cron,
            "interval": None,
            "kwargs": json.dumps({"drill_id": drill.pk}),
            "enabled": drill.enabled,
        },
    )


def schedule_name(drill: Drill) -> str:
    return f"drill {drill.pk}: {drill.name}"[:200]


def delete_drill(drill: Drill) -> None:
    from django_celery_beat.models import PeriodicTask

    with transaction.atomic():
        PeriodicTask.objects.filter(name=schedule_name(drill)).delete()
        drill.delete()


def target_of(drill: Drill) -> Target:
    if drill.target == TargetKind.PORTAL:
        return portal_target()
    return external_target(crypto.decrypt(drill.dsn_ciphertext), key=f"drill:{drill.pk}")


def reencrypt_dsns() -> int:
    """Re-encrypt every stored DSN with the current key (manage.py rotate_secrets)."""
    count = 0
    with transaction.atomic():
        for drill in Drill.objects.exclude(dsn_ciphertext="").select_for_update():
            Drill.objects.filter(pk=drill.pk).update(
                dsn_ciphertext=crypto.reencrypt(drill.dsn_ciphertext)
            )
            count += 1
    return count


# --- runs -----------------------------------------------------------------------------------


def active_run_exists() -> bool:
    with all_tenants_context():
        return DrillRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists()


def _new_run(drill: Drill, *, trigger: str, requested_by: str) -> DrillRun:
    """A queued run, audited; refused (RunConflict, 409) when one is already queued or running
    anywhere in the portal."""
    if active_run_exists():
        raise RunConflict("A drill is already queued or running; drills never run at once.")
    run = DrillRun.objects.create(
        tenant_id=drill.tenant_id,
        drill=drill,
        kind=drill.kind,
        trigger=trigger,
        requested_by=requested_by,
    )
    record_event(
        tenant_id=drill.tenant_id,
        action="drill.run_requested",
        target=run,
        after={"drill": drill.name, "trigger": trigger, "by": requested_by},
    )
    return run


def request_run(drill: Drill, *, trigger: str, requested_by: str) -> DrillRun:
    """Queue a run for a Celery worker (API, admin)."""
    with transaction.atomic():
        run = _new_run(drill, trigger=trigger, requested_by=requested_by)
        enqueue("drills.execute_run", run_id=run.pk)
    return run


def cancel_run(run: DrillRun, *, by: str) -> DrillRun:
    with transaction.atomic():
        run = DrillRun.objects.select_for_update().get(pk=run.pk)
        if run.finished:
            return run
        if run.status == RunStatus.QUEUED:
            run.status = RunStatus.CANCELED
            run.finished_at = timezone.now()
            run.error = f"canceled by {by} before it started"
        run.cancel_requested = True
        run.save(update_fields=["status", "finished_at", "error", "cancel_requested"])
        record_event(
            tenant_id=run.tenant_id, action="drill.run_cancel_requested", target=run, after={}
        )
    return run


def options_for(drill: Drill, **overrides) -> engine.DrillOptions:
    options = engine.DrillOptions(
        kind=drill.kind,
        rto_target_seconds=drill.rto_target_seconds,
        rpo_target_seconds=drill.rpo_target_seconds,
        use_latest_backup=drill.use_latest_backup,
        rollback_to=drill.rollback_to or "steps=1",
        tenant_id=None if drill.target == TargetKind.PORTAL else drill.tenant_id,
        drill_id=drill.pk,
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(options, key, value)
    return options


def execute_run(run_id: int, *, after_restore: Callable | None = None, **overrides) -> DrillRun:
    """Run a queued drill to its end in this process (Celery task or `run_drill`)."""
    with all_tenants_context():
        with transaction.atomic():
            run = DrillRun.objects.select_for_update().select_related("drill").get(pk=run_id)
            if run.status != RunStatus.QUEUED:
                if run.status == RunStatus.RUNNING and not engine.drill_running():
                    return _interrupted(run)
                return run  # finished, or being run by another process
            run.status = RunStatus.RUNNING
            run.started_at = timezone.now()
            run.save(update_fields=["status", "started_at"])
            record_event(tenant_id=run.tenant_id, action="drill.run_started", target=run, after={})
        drill = run.drill
        options = options_for(drill, **overrides)
        options.label = f"r{run.pk}"
        options.after_restore = after_restore
        options.should_cancel = lambda: DrillRun.objects.filter(
            pk=run.pk, cancel_requested=True
        ).exists()
        options.on_progress = lambda report: DrillRun.objects.filter(pk=run.pk).update(
            phases=report.to_dict()["phases"], shadow_database=report.shadow_database
        )
        try:
            target = target_of(drill)
        except Exception as exc:
            report = DrillReport(
                kind=drill.kind,
                engine="postgresql",
                target=drill.dsn_hint,
                started_at=run.started_at,
            )
            report.error = f"cannot read the target DSN: {type(exc).__name__}"
            report.finished_at = timezone.now()
        else:
            report = engine.execute(target, options)
        return finish_run(run, report)


def _interrupted(run: DrillRun) -> DrillRun:
    """A run left `running` by a process that died: its shadow is dropped by the sweep."""
    report = DrillReport(
        kind=run.kind, engine="", target=run.drill.target_label, started_at=run.started_at
    )
    report.error = "interrupted: the process running the drill stopped before it finished"
    report.phases = []
    report.finished_at = timezone.now()
    return finish_run(run, report, keep_phases=True)


def finish_run(run: DrillRun, report: DrillReport, *, keep_phases: bool = False) -> DrillRun:
    """Store the outcome, keep the report as evidence, and alert (tier 1) on a failure or a
    missed target; a passing run resolves the drill's alert."""
    data = to_json_value(report.to_dict())
    with all_tenants_context(), transaction.atomic():
        run = DrillRun.objects.select_for_update().select_related("drill").get(pk=run.pk)
        run.status = report.status
        run.finished_at = report.finished_at or timezone.now()
        if not keep_phases:
            run.phases = data["phases"]
        run.tables = data["tables"]
        run.mismatches = report.mismatches
        run.warnings = report.warnings
        if report.backup:
            run.backup_id = report.backup.backup_id
            run.backup_bytes = report.backup.size_bytes
            run.backup_sha256 = report.backup.sha256
        run.rto_seconds = report.rto_seconds
        run.rpo_seconds = report.rpo_seconds
        run.rto_met = report.rto_met
        run.rpo_met = report.rpo_met
        run.shadow_database = report.shadow_database
        run.error = report.error
        run.log = "\n".join(report.log)
        run.report = data
        run.evidence = store_evidence(
            tenant_id=run.tenant_id,
            kind="drill_run",
            content={"run": run.pk, "drill": run.drill.name, **data},
            period=run.finished_at.date().isoformat(),
        )
        run.save()
        record_event(
            tenant_id=run.tenant_id,
            action="drill.run_finished",
            target=run,
            after={
                "status": run.status,
                "rto_seconds": run.rto_seconds,
                "rpo_seconds": run.rpo_seconds,
                "mismatches": len(report.mismatches),
            },
        )
        _alert(run, report)
    return run


def _alert(run: DrillRun, report: DrillReport) -> None:
    drill = run.drill
    key = f"drill:{drill.pk}"
    if report.passed:
        resolve_alert(drill.tenant, key)
        return
    if report.canceled:
        return
    tier = 1
    if report.refused:
        # Not a finding about the backups: the drill did not start (another one was running,
        # or the disk is short). A ticket, not a page; the next run tries again.
        tier = 2
        reason = report.error
        title = f"DR drill {drill.name} could not start"
    elif report.error or report.mismatches:
        reason = report.error or report.mismatches[0]
        title = f"DR drill {drill.name} failed"
    elif report.rto_met is False:
        reason = f"RTO {report.rto_seconds:.0f} s over the {drill.rto_target_seconds} s target"
        title = f"DR drill {drill.name} missed its RTO target"
    else:
        reason = f"RPO {report.rpo_seconds:.0f} s over the {drill.rpo_target_seconds} s target"
        title = f"DR drill {drill.name} missed its RPO target"
    raise_alert(
        drill.tenant,
        source=ALERT_SOURCE,
        tier=tier,
        dedup_key=key,
        title=title,
        summary=f"{reason}. {len(report.mismatches)} mismatch(es).",
        details={
            "run": run.pk,
            "status": run.status,
            "target": drill.target_label,
            "rto_seconds": report.rto_seconds,
            "rpo_seconds": report.rpo_seconds,
            "mismatches": report.mismatches[:10],
        },
        links=[{"href": reverse("admin:drills_drillrun_change", args=[run.pk]), "text": "Run"}],
    )


def run_in_foreground(drill: Drill, *, trigger: str, requested_by: str, **overrides) -> DrillRun:
    """`run_drill`, beat and the demo: create the run and execute it in this process."""
    with transaction.atomic():
        run = _new_run(drill, trigger=trigger, requested_by=requested_by)
    return execute_run(run.pk, **overrides)


def run_scheduled(drill_id: int) -> DrillRun | None:
    with all_tenants_context():
        drill = Drill.objects.filter(pk=drill_id, enabled=True).first()
        if drill is None:
            return None
        if active_run_exists():
            run = DrillRun.objects.create(
                tenant_id=drill.tenant_id, drill=drill, kind=drill.kind, trigger="schedule"
            )
            report = DrillReport(
                kind=drill.kind, engine="", target=drill.target_label, started_at=timezone.now()
            )
            report.refused = True
            report.error = "another drill was queued or running at the scheduled time"
            report.finished_at = timezone.now()
            return finish_run(run, report)
        return run_in_foreground(drill, trigger="schedule", requested_by="beat")


# --- backups and housekeeping ---------------------------------------------------------------


def backup_portal() -> backups.TakenBackup:
    """The daily backup of the portal's own database (also `manage.py backup_now`). A failure
    pages the tenants that drill the portal's database, and resolves on the next success."""
    target = portal_target()
    backend = engine.backend_for(target, engine.DrillOptions())
    with all_tenants_context():
        drills = list(Drill.objects.filter(target=TargetKind.PORTAL).select_related("tenant"))
        tenants = {drill.tenant_id: drill.tenant for drill in drills}.values()
        try:
            backend.probe()
            taken = backups.take_backup(backend, target, tenant_id=None, drill_id=None)
        except Exception as exc:
            from apps.drills.pg_backend import describe_connection_error

            for tenant in tenants:
                raise_alert(
                    tenant,
                    source=ALERT_SOURCE,
                    tier=1,
                    dedup_key="backup:portal",
                    title="The daily backup of the portal's database failed",
                    summary=describe_connection_error(exc)[:500],
                    details={"backup_dir": str(settings.BACKUP_DIR)},
                )
            raise
        for tenant in tenants:
            resolve_alert(tenant, "backup:portal")
        return taken


def purge_backups() -> dict:
    with all_tenants_context():
        return backups.purge_expired()


def sweep(now: datetime | None = None) -> dict:
    """Drop shadows of killed drills, close runs their dead process left `running`, and close
    runs still `queued` after DRILL_QUEUED_TIMEOUT_MINUTES (their task was lost), so nothing
    blocks the next drill forever."""
    now = now or timezone.now()
    dropped = engine.cleanup_orphans(portal_target())
    closed = 0
    if not engine.drill_running():
        with all_tenants_context():
            for run in DrillRun.objects.filter(status=RunStatus.RUNNING).select_related("drill"):
                _interrupted(run)
                closed += 1
            stale = now - timedelta(minutes=settings.DRILL_QUEUED_TIMEOUT_MINUTES)
            for run in DrillRun.objects.filter(
                status=RunStatus.QUEUED, created_at__lt=stale
            ).select_related("drill"):
                report = DrillReport(
                    kind=run.kind, engine="", target=run.drill.target_label, started_at=now
                )
                report.error = (
                    f"never started: still queued after {settings.DRILL_QUEUED_TIMEOUT_MINUTES} "
                    "minutes (is a Celery worker running?)"
                )
                report.finished_at = now
                finish_run(run, report)
                closed += 1
    return {"shadows_dropped": dropped, "runs_closed": closed}
