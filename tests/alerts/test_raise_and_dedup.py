"""The entry point: raising, deduplication, repeats, thresholds, and bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.alerts import services
from apps.alerts.delivery import deliver_due
from apps.alerts.models import Alert, Delivery, DeliveryStatus, NotifyState, Policy
from apps.audit.models import AuditEvent
from apps.tenancy.roles import Role
from tests.alerts.conftest import make_channels

pytestmark = pytest.mark.django_db


def test_raising_a_firing_key_again_counts_instead_of_notifying(tenant, receiver):
    make_channels(tenant, receiver.url)
    first = services.raise_alert(tenant, "compliance", 1, "R01:acme/web", "Secrets in repo")
    again = services.raise_alert(tenant, "compliance", 1, "R01:acme/web", "Secrets in repo")
    assert first.created and first.deliveries == 3
    assert not again.created and again.deliveries == 0
    services.raise_alert(tenant, "compliance", 1, "R01:acme/web", "Secrets in repo (3 files)")
    alert = Alert.objects.get()
    assert alert.count == 3 and alert.notify_state == NotifyState.NOTIFIED
    assert alert.title == "Secrets in repo (3 files)", "the latest title wins"
    assert Delivery.objects.count() == 3
    assert AuditEvent.objects.filter(action="alert.raised").count() == 1


def test_an_unacknowledged_alert_repeats_after_the_dedup_window(tenant, receiver):
    make_channels(tenant, receiver.url, kinds=("webhook",))
    start = timezone.now()
    services.raise_alert(tenant, "slo", 1, "burn:web", "Burning", now=start)
    inside = services.raise_alert(
        tenant, "slo", 1, "burn:web", "Burning", now=start + timedelta(minutes=59)
    )
    after = services.raise_alert(
        tenant, "slo", 1, "burn:web", "Burning", now=start + timedelta(minutes=61)
    )
    assert (inside.deliveries, after.deliveries) == (0, 1)
    assert list(Delivery.objects.order_by("id").values_list("purpose", flat=True)) == [
        "trigger",
        "repeat",
    ]
    services.acknowledge_alert(after.alert, "alice")
    acked = services.raise_alert(
        tenant, "slo", 1, "burn:web", "Burning", now=start + timedelta(hours=3)
    )
    assert acked.deliveries == 0, "an acknowledged alert does not repeat"


def test_a_resolved_key_raised_again_is_a_new_alert(tenant):
    services.raise_alert(tenant, "drills", 1, "drill:weekly", "Drill failed")
    services.resolve_alert(tenant, "drill:weekly")
    services.raise_alert(tenant, "drills", 1, "drill:weekly", "Drill failed")
    assert list(Alert.objects.order_by("id").values_list("status", flat=True)) == [
        "resolved",
        "firing",
    ]


def test_threshold_holds_alerts_until_enough_fire_in_the_window(tenant, receiver):
    make_channels(tenant, receiver.url, kinds=("webhook",))
    Policy.objects.filter(tenant=tenant, tier=1).delete()
    services.raise_alert(tenant, "x", 1, "warmup", "creates default policy")
    Policy.objects.filter(tenant=tenant, tier=1).update(
        threshold_count=3, threshold_window_minutes=10
    )
    Alert.objects.all().delete()
    Delivery.objects.all().delete()
    results = [services.raise_alert(tenant, "ci", 1, f"k{i}", f"Alert {i}") for i in range(3)]
    assert [r.deliveries for r in results] == [0, 0, 3], "the third releases all three"
    assert set(Alert.objects.values_list("notify_state", flat=True)) == {NotifyState.NOTIFIED}


@pytest.mark.parametrize(
    ("tier", "field"),
    [(7, "tier"), ("high", "tier"), (None, "tier")],
)
def test_unknown_tier_is_rejected_without_writing(tenant, tier, field):
    with pytest.raises(ValidationError) as caught:
        services.raise_alert(tenant, "ci", tier, "k", "t")
    assert field in caught.value.message_dict
    assert not Alert.objects.exists()


def test_api_raise_returns_201_then_200_and_400_for_an_unknown_tier(tenant, make_token, api):
    client = api(make_token(tenant, Role.OPERATOR))
    body = {"source": "ci", "tier": 1, "dedup_key": "gate:web#12", "title": "Gate blocked"}
    first = client.post("/api/v1/alerts", body, format="json")
    again = client.post("/api/v1/alerts", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200), first.content
    assert again.json()["count"] == 2
    bad = client.post("/api/v1/alerts", {**body, "tier": 9}, format="json")
    assert bad.status_code == 400
    problem = bad.json()
    assert problem["status"] == 400 and "tier" in problem["errors"]
    assert bad["Content-Type"].startswith("application/problem+json")
    assert Alert.objects.count() == 1


def test_viewer_cannot_raise_and_other_tenants_alerts_are_invisible(
    tenant, other_tenant, make_token, api
):
    services.raise_alert(other_tenant, "ci", 1, "theirs", "Not yours")
    viewer = api(make_token(tenant, Role.VIEWER))
    body = {"source": "ci", "tier": 1, "dedup_key": "k", "title": "t"}
    assert viewer.post("/api/v1/alerts", body, format="json").status_code == 403
    assert viewer.get("/api/v1/alerts").json()["results"] == []
    theirs = Alert.objects.get(tenant=other_tenant)
    operator = api(make_token(tenant, Role.OPERATOR))
    assert operator.get(f"/api/v1/alerts/{theirs.pk}").status_code == 404
    assert operator.post(f"/api/v1/alerts/{theirs.pk}/ack").status_code == 404


def test_ack_and_resolve_through_the_api_with_409_for_a_resolved_alert(tenant, make_token, api):
    alert = services.raise_alert(tenant, "ci", 1, "k", "t").alert
    client = api(make_token(tenant, Role.OPERATOR))
    acked = client.post(f"/api/v1/alerts/{alert.pk}/ack")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert client.post(f"/api/v1/alerts/{alert.pk}/resolve").json()["status"] == "resolved"
    again = client.post(f"/api/v1/alerts/{alert.pk}/ack")
    assert again.status_code == 409 and "resolved" in again.json()["detail"]
    actions = list(
        AuditEvent.objects.filter(target_type="alerts.alert", target_id=str(alert.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["alert.raised", "alert.acknowledged", "alert.resolved"]


def test_deliveries_go_out_in_process_with_attempt_history(tenant, receiver):
    make_channels(tenant, receiver.url)
    services.raise_alert(tenant, "ci", 1, "k", "Gate blocked")
    counts = deliver_due()
    assert counts == {"delivered": 3}
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert {r.path.split("/")[1] for r in receiver.processed()} == {"slack", "pagerduty", "hook"}


def test_a_4xx_answer_is_permanent_and_a_429_waits_for_retry_after(tenant, receiver):
    make_channels(tenant, receiver.url, kinds=("webhook",))
    receiver.mode = "gone"
    services.raise_alert(tenant, "ci", 1, "gone", "Receiver removed")
    assert deliver_due() == {"rejected": 1, "dead": 1}, "no retry can fix a 404"
    receiver.mode = "throttled"
    services.raise_alert(tenant, "ci", 1, "busy", "Receiver throttling")
    before = timezone.now()
    assert deliver_due() == {"failed": 1}
    throttled = Delivery.objects.get(alert__dedup_key="busy")
    assert throttled.status == DeliveryStatus.RETRYING and throttled.attempts == 1
    wait = (throttled.next_attempt_at - before).total_seconds()
    assert 29 <= wait <= 31, f"Retry-After: 30 is honoured, not the 2 s backoff ({wait:.1f} s)"
