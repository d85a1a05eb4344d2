"""Writes for the platform plumbing: outbox, heartbeats, task outcomes, idempotency expiry."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.models import Heartbeat, OutboxMessage, TaskOutcome
from opsportal.context import current_request_id

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT = "beat"


def enqueue(task_name: str, **kwargs: Any) -> OutboxMessage:
    """Record a side effect in the current transaction; send it to Celery after commit."""
    message = OutboxMessage.objects.create(
        task_name=task_name, kwargs=kwargs, request_id=current_request_id() or ""
    )
    transaction.on_commit(lambda: dispatch(message.pk))
    return message


def dispatch(message_id: int) -> bool:
    """Publish one outbox message. Returns False (and keeps it pending) if the broker is down."""
    from opsportal.celery import app

    message = OutboxMessage.objects.filter(pk=message_id, dispatched_at__isnull=True).first()
    if message is None:
        return True
    try:
        app.send_task(
            message.task_name,
            kwargs={**message.kwargs, "outbox_id": message.pk},
            headers={"request_id": message.request_id or current_request_id()},
            retry=False,
        )
    except Exception as exc:  # any broker failure: keep it for the drain
        OutboxMessage.objects.filter(pk=message.pk).update(
            attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        logger.warning("broker unavailable; outbox message %s kept pending", message.pk)
        return False
    OutboxMessage.objects.filter(pk=message.pk).update(
        dispatched_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
    )
    return True


def drain_outbox(older_than_seconds: int | None = None, limit: int = 500) -> dict[str, int]:
    """Re-send pending outbox messages left behind by a broker outage."""
    age = (
        settings.OUTBOX_REDISPATCH_AFTER_SECONDS
        if older_than_seconds is None
        else older_than_seconds
    )
    cutoff = timezone.now() - timedelta(seconds=age)
    pending = list(
        OutboxMessage.objects.filter(dispatched_at__isnull=True, created_at__lte=cutoff)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    sent = sum(1 for pk in pending if dispatch(pk))
    return {"pending": len(pending), "sent": sent, "failed": len(pending) - sent}


def beat(name: str = BEAT_HEARTBEAT) -> None:
    Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})


def record_task_outcome(task_name: str, state: str) -> None:
    try:
        updated = TaskOutcome.objects.filter(task_name=task_name, state=state).update(
            count=F("count") + 1
        )
        if not updated:
            TaskOutcome.objects.get_or_create(task_name=task_name, state=state)
            TaskOutcome.objects.filter(task_name=task_name, state=state).update(
                count=F("count") + 1
            )
    except Exception:
        logger.warning("could not record outcome of task %s", task_name, exc_info=True)
