"""Flag jobs run by beat, every minute: scheduled changes and automatic rollout stages."""

from __future__ import annotations

from celery import shared_task

from apps.core.taskbase import OpsTask
from apps.flags import changes, rollouts


@shared_task(base=OpsTask, name="flags.apply_scheduled_changes")
def apply_scheduled_changes(**_kwargs) -> int:
    return len(changes.apply_due())


@shared_task(base=OpsTask, name="flags.advance_rollouts")
def advance_rollouts(**_kwargs) -> int:
    return len(rollouts.advance_due())
