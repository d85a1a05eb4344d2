"""Tier policies with time under the test's control: quiet hours across a DST change, hourly
batches capped per day, summaries, escalation, thresholds for the DLQ alert, metrics, tile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client, override_settings

from apps.alerts import services
from apps.alerts.delivery import deliver_due
from apps.alerts.models import (
    Alert,
    Channel,
    Delivery,
    DeliveryStatus,
    Digest,
    NotifyState,
    Policy,
    Purpose,
)
from apps.alerts.policies import ensure_default_policies
from tests.alerts.conftest import make_channels

pytestmark = pytest.mark.django_db


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def edmonton(tenant, receiver):
    """The demo tenant's zone, America/Edmonton (MST -7, MDT -6 from 2026-03-08 02:00)."""
    assert tenant.time_zone == "America/Edmonton"
    make_channels(tenant, receiver.url, kinds=("slack", "email"))
    ensure_default_policies(tenant)
    return tenant


def _digest_deliveries(kind: str = "batch") -> int:
    return Delivery.objects.filter(purpose=Purpose.DIGEST, digest__kind=kind).count()


def test_quiet_hours_hold_tier2_until_nine_local_across_the_dst_change(edmonton):
    friday_evening = utc(2026, 3, 7, 2, 0)  # Fri 2026-03-06 19:00 MST
    alert = services.raise_alert(
        edmonton, "compliance", 2, "R12:web", "Override tier", now=friday_evening
    ).alert
    assert alert.notify_state == NotifyState.WAITING and not Delivery.objects.exists()
    for quiet in (
        friday_evening + timedelta(minutes=5),
        utc(2026, 3, 7, 19, 0),  # Saturday noon: weekend
        utc(2026, 3, 9, 14, 59),  # Monday 08:59 MDT
    ):
        assert services.tick(edmonton, now=quiet)["batches"] == 0, quiet
    assert not Delivery.objects.exists()
    # 09:00 MDT is 15:00 UTC; with the pre-DST offset it would have been 16:00 UTC.
    assert services.tick(edmonton, now=utc(2026, 3, 9, 15, 0))["batches"] == 1
    assert _digest_deliveries() == 2, "one batch to each of Slack and email"
    alert.refresh_from_db()
    assert alert.notify_state == NotifyState.NOTIFIED
    assert Digest.objects.get(kind="batch").period_key == "2026-03-09T09:00"


def test_quiet_hours_also_hold_across_the_autumn_change(edmonton):
    saturday = utc(2026, 10, 31, 20, 0)  # Sat 14:00 MDT
    services.raise_alert(edmonton, "compliance", 2, "R12:api", "Override tier", now=saturday)
    assert services.tick(edmonton, now=utc(2026, 11, 2, 15, 59))["batches"] == 0  # 08:59 MST
    assert services.tick(edmonton, now=utc(2026, 11, 2, 16, 0))["batches"] == 1  # 09:00 MST


def test_tier2_batches_hourly_at_most_five_a_day(edmonton):
    monday_nine = utc(2026, 3, 16, 15, 0)  # 09:00 MDT
    sent = []
    for hour in range(8):
        now = monday_nine + timedelta(hours=hour)
        services.raise_alert(edmonton, "compliance", 2, f"R12:{hour}", f"Override {hour}", now=now)
        sent.append(services.tick(edmonton, now=now + timedelta(minutes=1))["batches"])
        later = now + timedelta(minutes=20)
        services.raise_alert(edmonton, "compliance", 2, f"R13:{hour}", f"Late {hour}", now=later)
        held = services.tick(edmonton, now=now + timedelta(minutes=30))["batches"]
        assert held == 0, "no second batch within the hour"
    assert sent == [1, 1, 1, 1, 1, 0, 0, 0]
    waiting = Alert.objects.filter(notify_state=NotifyState.WAITING).count()
    assert waiting == 7, "what arrived after the fifth batch waits for the next day"
    assert services.tick(edmonton, now=monday_nine + timedelta(days=1))["batches"] == 1
    assert not Alert.objects.filter(notify_state=NotifyState.WAITING).exists()


def test_daily_summary_at_nine_covers_the_previous_day_once(edmonton):
    for n in range(3):
        services.raise_alert(
            edmonton, "compliance", 2, f"k{n}", f"A{n}", now=utc(2026, 3, 17, 18, n)
        )
    assert services.tick(edmonton, now=utc(2026, 3, 18, 14, 59))["summaries"] == 0
    assert services.tick(edmonton, now=utc(2026, 3, 18, 15, 0))["summaries"] == 1
    assert services.tick(edmonton, now=utc(2026, 3, 18, 15, 1))["summaries"] == 0
    digest = Digest.objects.get(kind="daily")
    assert digest.period_key == "2026-03-18" and digest.figures["alerts"] == 3
    assert _digest_deliveries("daily") == 2


@pytest.mark.parametrize(("alerts", "sent"), [(9, 0), (10, 1)])
def test_tier3_weekly_summary_only_when_the_week_has_ten(edmonton, alerts, sent):
    for n in range(alerts):
        services.raise_alert(
            edmonton, "compliance", 3, f"w{n}", f"Warning {n}", now=utc(2026, 3, 18, 18, n)
        )
    monday_nine = utc(2026, 3, 23, 15, 0)
    assert services.tick(edmonton, now=monday_nine - timedelta(minutes=1))["summaries"] == 0
    assert services.tick(edmonton, now=monday_nine)["summaries"] == sent
    weekly = Delivery.objects.filter(digest__kind="weekly")
    assert weekly.count() == sent, "tier 3 goes to email only"
    assert set(weekly.values_list("channel__kind", flat=True)) <= {"email"}
    assert Digest.objects.get(kind="weekly").period_key == "2026-W13"


def test_tier1_escalates_after_fifteen_minutes_unless_acknowledged(edmonton):
    manager = Channel.objects.create(
        tenant=edmonton, name="manager", kind="email", emails="m@example.com"
    )
    Policy.objects.get(tenant=edmonton, tier=1).escalation_channels.add(manager)
    start = utc(2026, 3, 21, 9, 0)  # Saturday, 03:00 MDT: tier 1 is 24/7
    ignored = services.raise_alert(edmonton, "slo", 1, "burn:web", "Burning", now=start).alert
    handled = services.raise_alert(edmonton, "slo", 1, "burn:api", "Burning", now=start).alert
    services.acknowledge_alert(handled, "alice")
    assert services.tick(edmonton, now=start + timedelta(minutes=14, seconds=59))["escalated"] == 0
    assert services.tick(edmonton, now=start + timedelta(minutes=15))["escalated"] == 1
    assert services.tick(edmonton, now=start + timedelta(minutes=30))["escalated"] == 0
    escalations = Delivery.objects.filter(purpose=Purpose.ESCALATION)
    assert list(escalations.values_list("alert_id", "channel__name")) == [(ignored.pk, "manager")]


def test_a_growing_dlq_raises_its_own_tier1_alert_by_email_only(tenant, receiver):
    make_channels(tenant, receiver.url, kinds=("email",))
    dead_end, _ = services.save_channel(
        Channel(tenant=tenant, name="dead", kind="webhook", url="http://127.0.0.1:9/hook")
    )
    with override_settings(ALERT_DELIVERY_MAX_ATTEMPTS=1, ALERT_DLQ_ALERT_THRESHOLD=2):
        for n in range(2):
            services.raise_alert(tenant, "ci", 1, f"k{n}", f"Alert {n}", only_kinds=["webhook"])
        deliver_due()
    assert Delivery.objects.filter(status=DeliveryStatus.DEAD, channel=dead_end).count() == 2
    dlq_alert = Alert.objects.get(source=services.DLQ_SOURCE)
    assert dlq_alert.tier == 1 and "2 alert deliveries" in dlq_alert.title
    kinds = set(Delivery.objects.filter(alert=dlq_alert).values_list("channel__kind", flat=True))
    assert kinds == {"email"}
    services.requeue_dead_letters(tenant)
    services.tick(tenant)
    dlq_alert.refresh_from_db()
    assert dlq_alert.status == "resolved", "the DLQ alert resolves when the queue drains"


def test_metrics_expose_deliveries_dlq_and_breakers(tenant, receiver):
    make_channels(tenant, receiver.url, kinds=("webhook",))
    services.raise_alert(tenant, "ci", 1, "k", "Gate blocked")
    deliver_due()
    body = Client().get("/metrics").content.decode()
    assert 'opsportal_alert_deliveries_total{channel="webhook",outcome="delivered"}' in body
    assert 'opsportal_alerts_raised_total{source="ci",tier="1"}' in body
    assert "opsportal_alert_delivery_latency_seconds_bucket" in body
    assert 'opsportal_alert_channel_breaker_state{channel="webhook",tenant="acme"} 0.0' in body
    assert "# TYPE opsportal_alert_dlq_size gauge" in body


def test_overview_tile_counts_firing_by_tier_and_the_dlq(tenant, admin_client_for):
    services.raise_alert(tenant, "ci", 1, "a", "A")
    services.raise_alert(tenant, "ci", 2, "b", "B")
    page = admin_client_for(tenant).get("/admin/").content.decode()
    assert "Alerts" in page and "tier 1 firing" in page
    assert "not installed yet: routing" not in page
