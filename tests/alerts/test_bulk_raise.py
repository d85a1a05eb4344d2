"""Raising many alerts at once: the same result per alert as raise_alert one after another
(dedup, repeats, acknowledged and resolved keys, tiers, thresholds, only_kinds), audited and
outboxed, all or nothing on bad input, and deduplicated under concurrency."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.alerts import delivery, services
from apps.alerts.models import Alert, AlertStatus, Delivery, Policy, Purpose
from apps.alerts.policies import ensure_default_policies
from apps.audit.models import AuditEvent
from apps.audit.selectors import verify_chains
from apps.core.models import OutboxMessage
from tests.alerts.conftest import in_thread, make_channels

pytestmark = pytest.mark.django_db

ALERT_FIELDS = (
    "source",
    "tier",
    "title",
    "summary",
    "details",
    "links",
    "status",
    "notify_state",
    "only_kinds",
    "count",
    "first_seen_at",
    "last_seen_at",
    "first_notified_at",
    "last_notified_at",
    "acknowledged_by",
    "resolved_by",
    "version",
)


def _prepare(tenant, url, now):
    """The same channels, policies and earlier alerts in each tenant."""
    make_channels(tenant, url, kinds=("slack", "pagerduty", "webhook", "email"))
    ensure_default_policies(tenant)
    Policy.objects.filter(tenant=tenant, tier=2).update(threshold_count=2)
    earlier = now - timedelta(hours=2)
    for key in ("open", "stale", "acked", "resolved"):
        services.raise_alert(tenant, "ci", 1, key, f"Earlier {key}", now=now - timedelta(minutes=5))
    Alert.objects.filter(tenant=tenant, dedup_key="stale").update(
        last_notified_at=earlier, first_notified_at=earlier
    )
    services.acknowledge_alert(Alert.objects.get(tenant=tenant, dedup_key="acked"), "alice")
    services.resolve_alert(tenant, "resolved")


CALL = [
    {"source": "ci", "tier": 1, "dedup_key": "new", "title": "New", "details": {"n": 1}},
    {"source": "ci", "tier": 1, "dedup_key": "open", "title": "Open, again", "summary": "x2"},
    {"source": "ci", "tier": 1, "dedup_key": "new", "title": "New, raised twice"},
    {"source": "ci", "tier": 1, "dedup_key": "stale", "title": "Stale: a repeat"},
    {"source": "ci", "tier": 1, "dedup_key": "acked", "title": "Acknowledged"},
    {"source": "ci", "tier": 1, "dedup_key": "resolved", "title": "Resolved, open again"},
    {"source": "slo", "tier": 2, "dedup_key": "t2-a", "title": "Below the threshold"},
    {"source": "slo", "tier": 3, "dedup_key": "t3", "title": "Weekly summary material"},
    {"source": "ci", "tier": 1, "dedup_key": "hook-only", "title": "x", "only_kinds": ["webhook"]},
    {"source": "slo", "tier": 2, "dedup_key": "t2-b", "title": "Reaches the threshold"},
    {"source": "ci", "tier": 1, "dedup_key": "links", "title": "L", "links": [{"href": "h"}]},
    {"source": "ci", "tier": "1", "dedup_key": "long", "title": "T" * 250},
]


def _state(tenant) -> dict:
    alerts = {}
    for alert in Alert.objects.filter(tenant=tenant).order_by("id"):
        key = (alert.dedup_key, alert.status)
        alerts[key] = {name: getattr(alert, name) for name in ALERT_FIELDS}
    deliveries = Counter(
        (d.alert.dedup_key, d.alert.status, d.channel.kind, d.purpose)
        for d in Delivery.objects.filter(tenant=tenant).select_related("alert", "channel")
    )
    targets = {str(a.pk): (a.dedup_key, a.status) for a in Alert.objects.filter(tenant=tenant)}
    events = Counter(
        (e.action, targets.get(e.target_id), json.dumps([e.before, e.after], sort_keys=True))
        for e in AuditEvent.objects.filter(tenant=tenant, target_type="alerts.alert")
    )
    return {"alerts": alerts, "deliveries": deliveries, "events": events}


def test_a_bulk_raise_gives_each_alert_what_raise_alert_would(tenant, other_tenant, receiver):
    now = timezone.now()
    _prepare(tenant, receiver.url, now)
    _prepare(other_tenant, receiver.url, now)
    one_by_one = [services.raise_alert(tenant, **item, now=now) for item in CALL]
    in_bulk = services.raise_alerts(other_tenant, CALL, now=now)

    def summary(results):
        return [(r.created, r.deliveries, r.alert.dedup_key, r.alert.count) for r in results]

    assert summary(in_bulk) == summary(one_by_one)
    assert [r.deliveries for r in in_bulk] == [4, 0, 0, 4, 0, 4, 0, 0, 1, 0, 4, 4]
    assert _state(other_tenant) == _state(tenant)
    assert Alert.objects.get(tenant=other_tenant, dedup_key="new").title == "New, raised twice"
    held = Alert.objects.filter(tenant=other_tenant, dedup_key__in=["t2-a", "t2-b"])
    assert set(held.values_list("notify_state", flat=True)) == {"waiting"}, "threshold reached"
    assert verify_chains().ok


def test_the_bulk_part_is_one_insert_each_and_one_outbox_message_per_engine_batch(
    tenant, receiver, monkeypatch, django_assert_max_num_queries
):
    make_channels(tenant, receiver.url)
    ensure_default_policies(tenant)
    monkeypatch.setattr(delivery, "BATCH_SIZE", 100)
    alerts = [
        {"source": "ci", "tier": 1, "dedup_key": f"k{i}", "title": f"Alert {i}"} for i in range(50)
    ]
    with django_assert_max_num_queries(20):
        results = services.raise_alerts(tenant, alerts)
    assert all(r.created and r.deliveries == 3 for r in results)
    assert Delivery.objects.filter(purpose=Purpose.TRIGGER).count() == 150
    messages = OutboxMessage.objects.filter(task_name="alerts.deliver")
    assert sorted(len(m.kwargs["delivery_ids"]) for m in messages) == [50, 100]
    raised = AuditEvent.objects.filter(action="alert.raised").order_by("seq")
    assert [e.target_id for e in raised] == [str(r.alert.pk) for r in results]
    assert verify_chains().ok


def test_bad_input_anywhere_writes_nothing(tenant):
    events = AuditEvent.objects.count()
    alerts = [
        {"source": "ci", "tier": 1, "dedup_key": "fine", "title": "Fine"},
        {"source": "ci", "tier": 9, "dedup_key": "bad", "title": ""},
    ]
    with pytest.raises(ValidationError) as caught:
        services.raise_alerts(tenant, alerts)
    assert set(caught.value.message_dict) == {"1.tier", "1.title"}
    with pytest.raises(TypeError, match="severity"):
        services.raise_alerts(tenant, [{**alerts[0], "severity": "high"}])
    assert not Alert.objects.exists() and AuditEvent.objects.count() == events
    assert services.raise_alerts(tenant, []) == []


def _raise_and_hold(tenant, alerts, inserted: threading.Event, release: threading.Event):
    with transaction.atomic():
        results = services.raise_alerts(tenant, alerts)
        inserted.set()
        release.wait(10)
    return results


def _keys(keys):
    return [{"source": "ci", "tier": 1, "dedup_key": k, "title": k} for k in keys]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_raises_of_the_same_new_keys_fold_into_one_alert_each(tenant, receiver):
    make_channels(tenant, receiver.url, kinds=("webhook",))
    ensure_default_policies(tenant)
    inserted, release = threading.Event(), threading.Event()
    first, first_out = in_thread(
        _raise_and_hold, tenant, _keys(f"k{i}" for i in range(10)), inserted, release
    )
    assert inserted.wait(10), first_out
    # The second call's INSERT waits on the first's uncommitted keys k5..k9 ...
    second, second_out = in_thread(
        services.raise_alerts, tenant, _keys(f"k{i}" for i in range(5, 15))
    )
    single, single_out = in_thread(services.raise_alert, tenant, "ci", 1, "k7", "k7")
    second.join(0.5)
    assert second.is_alive(), "the second call waits for the first one's keys"
    release.set()  # ... which commits: the second call starts over and folds into its alerts
    for thread in (first, second, single):
        thread.join(20)
    for out in (first_out, second_out, single_out):
        assert "error" not in out, out
    second_results = second_out["result"]
    assert [r.created for r in second_results] == [False] * 5 + [True] * 5
    assert [r.deliveries for r in second_results] == [0] * 5 + [1] * 5
    assert not single_out["result"].created
    open_alerts = Alert.objects.exclude(status=AlertStatus.RESOLVED)
    assert open_alerts.count() == 15, "one open alert per key"
    counts = dict(open_alerts.values_list("dedup_key", "count"))
    assert counts == {f"k{i}": 1 + (5 <= i < 10) + (i == 7) for i in range(15)}
    assert Delivery.objects.count() == 15, "one notification per key"
    assert AuditEvent.objects.filter(action="alert.raised").count() == 15
    assert verify_chains().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_bulk_raise_folds_into_a_key_a_concurrent_raise_alert_opened(tenant, receiver):
    make_channels(tenant, receiver.url, kinds=("webhook",))
    ensure_default_policies(tenant)
    inserted, release = threading.Event(), threading.Event()

    def raise_one_and_hold():
        with transaction.atomic():
            result = services.raise_alert(tenant, "ci", 1, "shared", "first")
            inserted.set()
            release.wait(10)
        return result

    first, first_out = in_thread(raise_one_and_hold)
    assert inserted.wait(10)
    bulk, bulk_out = in_thread(services.raise_alerts, tenant, _keys(["other", "shared"]))
    bulk.join(0.5)
    release.set()
    first.join(20)
    bulk.join(20)
    assert "error" not in first_out and "error" not in bulk_out, (first_out, bulk_out)
    assert [(r.created, r.deliveries) for r in bulk_out["result"]] == [(True, 1), (False, 0)]
    assert Alert.objects.get(dedup_key="shared").count == 2
    assert Delivery.objects.count() == 2
    assert verify_chains().ok
