"""Flag jobs run by beat: scheduled changes, applied within a minute of their time."""

from __future__ import annotations

from celery import shared_task

from apps.core.taskbase import OpsTask
from apps.flags import changes


@shared_task(base=OpsTask, name="flags.apply_scheduled_changes")
def apply_scheduled_changes(**_kwargs) -> int:
    return len(changes.apply_due())
