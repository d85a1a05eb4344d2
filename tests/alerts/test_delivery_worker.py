"""Delivery through a real Celery worker to real receivers on 127.0.0.1 (HTTP and SMTP)."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from django.conf import settings

from apps.alerts import services
from apps.alerts.models import ChannelHealth, Delivery, DeliveryStatus
from apps.tenancy.roles import Role
from tests.alerts.conftest import WEBHOOK_SECRET, make_channels
from tests.worker import _start_worker, _stop, _wait_for, needs_redis

pytestmark = [needs_redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FAST_RETRIES = {
    "ALERT_RETRY_BASE_SECONDS": "0.2",
    "ALERT_RETRY_MAX_SECONDS": "1",
    "ALERT_BREAKER_OPEN_SECONDS": "2",
}
GIVE_UP_QUICKLY = {"ALERT_DELIVERY_GIVE_UP_SECONDS": "4"}


def _worker(queue: str, **extra: str):
    return _start_worker(queue, settings.CELERY_BROKER_URL, {**FAST_RETRIES, **extra})


def _signature_ok(request) -> bool:
    stamp = request.headers["x-opsportal-timestamp"]
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(request.headers["x-opsportal-signature"], f"v1={expected}")


def test_fifty_tier1_alerts_reach_every_channel_exactly_once(tenant, receiver, smtp, worker_queue):
    make_channels(tenant, receiver.url, kinds=("slack", "pagerduty", "webhook", "email"))
    worker = _worker(worker_queue, EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}")
    try:
        for n in range(50):
            services.raise_alert(tenant, "compliance", 1, f"R01:web#{n}", f"Violation {n}")

        def all_arrived() -> bool:
            paths = [r.path.split("/")[1] for r in receiver.processed()]
            return (
                all(paths.count(p) >= 50 for p in ("slack", "pagerduty", "hook"))
                and len(smtp.messages) >= 50
            )

        arrived = _wait_for(all_arrived, timeout=60)
        for n in range(50):
            services.raise_alert(tenant, "compliance", 1, f"R01:web#{n}", f"Violation {n}")
        time.sleep(3)  # give a wrong second wave time to show up
    finally:
        output = _stop(worker)
    assert arrived, f"not every notification arrived within 60 s; worker output:\n{output}"
    paths = [r.path.split("/")[1] for r in receiver.processed()]
    assert {p: paths.count(p) for p in set(paths)} == {"slack": 50, "pagerduty": 50, "hook": 50}
    assert len(smtp.messages) == 50
    assert len(receiver.distinct_keys()) == 150
    assert all(_signature_ok(r) for r in receiver.processed("/hook"))
    assert Delivery.objects.count() == 200, "the second wave was deduplicated"
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    subjects = {m["Subject"] for m in smtp.messages}
    assert "[opsportal][T1] Violation 7" in subjects


def test_a_receiver_failing_half_the_requests_gets_every_alert(tenant, worker_queue):
    from tests.alerts.receivers import start_http_receiver

    flaky = start_http_receiver(mode="flaky")
    make_channels(tenant, flaky.url, kinds=("webhook",))
    worker = _worker(worker_queue)
    try:
        for n in range(20):
            services.raise_alert(tenant, "slo", 1, f"burn#{n}", f"Burn {n}")
        done = _wait_for(
            lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 20,
            timeout=60,
        )
    finally:
        output = _stop(worker)
        flaky.server.shutdown()
    assert done, f"deliveries did not complete; worker output:\n{output}"
    assert flaky.hits == 40, "every first request failed, every second one succeeded"
    processed = flaky.processed()
    assert len(processed) > 20, "some failures happened after processing: duplicates arrived"
    assert len(flaky.distinct_keys()) == 20, "the idempotency key makes them one each"
    assert not Delivery.objects.filter(status=DeliveryStatus.DEAD).exists()


def test_a_dead_receiver_fills_the_dlq_without_a_request_storm_then_requeue_delivers(
    tenant, worker_queue, make_token, api
):
    from tests.alerts.receivers import start_http_receiver

    down = start_http_receiver(mode="down")
    channel = make_channels(tenant, down.url, kinds=("webhook",))["webhook"]
    worker = _worker(worker_queue, **GIVE_UP_QUICKLY)
    try:
        for n in range(10):
            services.raise_alert(tenant, "drills", 1, f"drill#{n}", f"Drill {n}")
        all_dead = _wait_for(
            lambda: Delivery.objects.filter(status=DeliveryStatus.DEAD).count() == 10,
            timeout=60,
        )
        hits_while_down = down.hits
        health = ChannelHealth.objects.get(channel=channel)
        client = api(make_token(tenant, Role.OPERATOR))
        stats = client.get("/api/v1/alerts/dlq/stats").json()

        down.mode = "ok"
        requeued = client.post("/api/v1/alerts/dlq/requeue", {}, format="json")
        delivered = _wait_for(
            lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 10,
            timeout=60,
        )
    finally:
        output = _stop(worker)
        down.server.shutdown()
    assert all_dead, f"deliveries did not reach the DLQ; worker output:\n{output}"
    assert health.state == "open"
    assert hits_while_down <= 8, f"{hits_while_down} requests: the breaker did not stop a storm"
    assert stats["total"] == 10
    assert stats["by_channel"][0]["channel"] == "webhook"
    assert stats["by_age"]["lt_1h"] == 10
    assert requeued.status_code == 200 and requeued.json() == {"requeued": 10}
    assert delivered, f"requeued deliveries did not arrive; worker output:\n{output}"
    assert len(down.distinct_keys()) == 10
