"""The admin screens of alerts render with demo data, and their actions work."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.alerts.delivery import deliver_due
from apps.alerts.demo import load_demo
from apps.alerts.models import Alert, AlertStatus, Delivery, DeliveryStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(tenant):
    assert load_demo(tenant) is True
    assert load_demo(tenant) is False, "loaded once"
    with override_settings(ALERT_DELIVERY_MAX_ATTEMPTS=1):
        deliver_due()
    return tenant


def test_demo_data_shows_every_state_and_a_real_dead_letter(demo):
    statuses = set(Alert.objects.values_list("status", flat=True))
    assert statuses == {"firing", "acknowledged", "resolved"}
    assert Delivery.objects.filter(status=DeliveryStatus.DEAD).exists()
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/alerts/alert/",
        "/admin/alerts/alert/?status__exact=firing&tier__exact=1",
        "/admin/alerts/alert/?outcome=dead",
        "/admin/alerts/deadletter/",
        "/admin/alerts/channel/",
        "/admin/alerts/policy/",
        "/admin/alerts/delivery/",
    ],
)
def test_alert_screens_render(demo, admin_client_for, path):
    response = admin_client_for(demo).get(path)
    assert response.status_code == 200, path


def test_alert_detail_lists_its_deliveries(demo, admin_client_for):
    alert = Alert.objects.get(dedup_key="R07:acme/web#42")
    page = admin_client_for(demo).get(f"/admin/alerts/alert/{alert.pk}/change/").content.decode()
    assert "Legacy chat webhook" in page and "On-call email" in page


def test_admin_actions_acknowledge_and_requeue(demo, admin_client_for):
    client = admin_client_for(demo)
    alert = Alert.objects.get(dedup_key="R07:acme/web#42")
    client.post("/admin/alerts/alert/", {"action": "acknowledge", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == "root"
    dead = list(Delivery.objects.filter(status=DeliveryStatus.DEAD).values_list("pk", flat=True))
    client.post("/admin/alerts/deadletter/", {"action": "requeue", "_selected_action": dead})
    assert not Delivery.objects.filter(status=DeliveryStatus.DEAD).exists()
    assert Delivery.objects.filter(pk__in=dead, requeued_count=1).count() == len(dead)
