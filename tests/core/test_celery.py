"""A real Celery worker against the real broker (Redis in CI), and the outbox through an outage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from apps.audit.models import AuditEvent
from apps.core import services
from apps.core.models import OutboxMessage
from apps.core.schedules import SCHEDULES
from opsportal.celery import app as celery_app
from opsportal.context import reset_request_id, set_request_id
from tests.worker import _start_worker, _stop, _wait_for

ROOT = Path(__file__).resolve().parents[2]
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")


@pytest.mark.django_db
def test_migrate_syncs_every_declared_schedule():
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {entry["name"] for entry in SCHEDULES} <= names
    heartbeat = PeriodicTask.objects.get(name="beat heartbeat")
    assert heartbeat.task == "core.beat_heartbeat" and heartbeat.interval.every == 30


@pytest.mark.django_db
def test_sync_keeps_an_operators_edit():
    from apps.core.schedules import sync_schedules

    PeriodicTask.objects.filter(name="drain outbox").update(enabled=False)
    assert sync_schedules() == []
    assert PeriodicTask.objects.get(name="drain outbox").enabled is False


def _task_event(outbox_id: int) -> AuditEvent | None:
    return AuditEvent.objects.filter(action="core.demo_task_ran", target_id=str(outbox_id)).first()


@needs_redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_task_that_writes_to_the_database(worker_queue):
    broker = settings.CELERY_BROKER_URL
    worker = _start_worker(worker_queue, broker)
    request_token = set_request_id("req-from-the-api")
    try:
        with transaction.atomic():
            message = services.enqueue("core.mark_outbox_done", note="worker")
        ran = _wait_for(lambda: _task_event(message.pk) is not None)
    finally:
        reset_request_id(request_token)
        output = _stop(worker)
    assert ran, f"the worker did not run the task; its output:\n{output}"
    assert OutboxMessage.objects.get(pk=message.pk).dispatched_at is not None
    event = _task_event(message.pk)
    assert event.request_id == "req-from-the-api", "the request id travels with the task"
    assert event.after == {"note": "worker"}


def _switch_broker(monkeypatch, url: str) -> None:
    """Point the publishing side at another broker URL, dropping pooled connections."""
    from kombu import pools

    monkeypatch.setattr(celery_app.conf, "broker_url", url)
    celery_app.pool.force_close_all()
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@needs_redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_outbox_keeps_side_effects_through_a_broker_outage(worker_queue, monkeypatch):
    closed_port_broker = "redis://127.0.0.1:1/15"
    real_broker = settings.CELERY_BROKER_URL
    _switch_broker(monkeypatch, closed_port_broker)
    with transaction.atomic():
        message = services.enqueue("core.mark_outbox_done", note="outage")
    pending = OutboxMessage.objects.get(pk=message.pk)
    assert pending.dispatched_at is None, "the write succeeded and the side effect is kept"
    assert pending.attempts == 1 and pending.last_error

    _switch_broker(monkeypatch, real_broker)
    worker = _start_worker(worker_queue, real_broker)
    try:
        drained = services.drain_outbox(older_than_seconds=0)
        assert drained == {"pending": 1, "sent": 1, "failed": 0}, OutboxMessage.objects.get(
            pk=message.pk
        ).last_error
        ran = _wait_for(lambda: _task_event(message.pk) is not None)
    finally:
        output = _stop(worker)
    assert ran, f"the drained task did not run; worker output:\n{output}"
