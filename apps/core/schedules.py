"""Every periodic task, declared once here and synced into django-celery-beat on migrate.

After the first sync, schedules are editable in the admin: the sync creates missing entries and
never overwrites an entry an operator has changed (it only adds what is new).
"""

from __future__ import annotations

import json

from django.db import connection

SCHEDULES: list[dict] = [
    {"name": "beat heartbeat", "task": "core.beat_heartbeat", "every_seconds": 30},
    {"name": "drain outbox", "task": "core.drain_outbox", "every_seconds": 60},
    {"name": "alert tick", "task": "alerts.tick", "every_seconds": 60},
    {"name": "alert delivery sweeper", "task": "alerts.dispatch_due", "every_seconds": 15},
    {"name": "override expiry", "task": "overrides.expire", "every_seconds": 300},
    {
        "name": "flag scheduled changes",
        "task": "flags.apply_scheduled_changes",
        "every_seconds": 60,
    },
    {"name": "flag rollouts", "task": "flags.advance_rollouts", "every_seconds": 60},
    {"name": "slo burn-rate alerts", "task": "slo.evaluate_alerts", "every_seconds": 60},
    {"name": "slo canary verdicts", "task": "slo.evaluate_releases", "every_seconds": 60},
    {
        "name": "slo daily reports",
        "task": "slo.daily_reports",
        "crontab": {"minute": "*/15", "hour": "*"},
    },
    {
        "name": "compliance trends",
        "task": "compliance.build_trends",
        "crontab": {"minute": "7,37", "hour": "*"},
    },
    {
        "name": "drills daily backup",
        "task": "drills.daily_backup",
        "crontab": {"minute": "30", "hour": "1"},
    },
    {
        "name": "drills backup retention",
        "task": "drills.purge_backups",
        "crontab": {"minute": "10", "hour": "4"},
    },
    {"name": "drills sweep", "task": "drills.sweep", "every_seconds": 900},
    {
        "name": "retention",
        "task": "privacy.enforce_retention",
        "crontab": {"minute": "5", "hour": "*"},
    },
    {
        "name": "privacy deadline reminders",
        "task": "privacy.remind_deadlines",
        "crontab": {"minute": "20", "hour": "*"},
    },
    {
        "name": "audit head checkpoint",
        "task": "audit.record_checkpoint",
        "crontab": {"minute": "5", "hour": "0"},
    },
    {
        "name": "audit chain verification",
        "task": "audit.verify_chains",
        "crontab": {"minute": "15", "hour": "0"},
    },
]


# Tasks that no longer exist: their schedules are removed at the next sync (the purges that
# privacy.enforce_retention, the one retention mechanism, took over).
RETIRED_TASKS = ("core.purge_idempotency_records", "compliance.purge", "slo.purge")


def sync_schedules() -> list[str]:
    """Create the declared periodic tasks that do not exist yet, remove those of retired tasks;
    return the names created."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    PeriodicTask.objects.filter(task__in=RETIRED_TASKS).delete()
    created = []
    for entry in SCHEDULES:
        if PeriodicTask.objects.filter(name=entry["name"]).exists():
            continue
        fields = {"task": entry["task"], "kwargs": json.dumps(entry.get("kwargs", {}))}
        if "every_seconds" in entry:
            fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=entry["every_seconds"], period=IntervalSchedule.SECONDS
            )
        else:
            cron = {
                "minute": "*",
                "hour": "*",
                "day_of_week": "*",
                "day_of_month": "*",
                "month_of_year": "*",
                **entry["crontab"],
            }
            fields["crontab"], _ = CrontabSchedule.objects.get_or_create(**cron, timezone="UTC")
        PeriodicTask.objects.create(name=entry["name"], **fields)
        created.append(entry["name"])
    return created


def sync_schedules_after_migrate(**kwargs) -> None:
    if "django_celery_beat_periodictask" in connection.introspection.table_names():
        sync_schedules()
