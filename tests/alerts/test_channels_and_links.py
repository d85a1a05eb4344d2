"""Channels: validation at save, secrets encrypted and never shown again, send test.
Ack links: valid once, expired rejected, tampered rejected, GET never acknowledges."""

from __future__ import annotations

import json
import re

import pytest
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client, override_settings

from apps.alerts import links, payloads, services
from apps.alerts.models import Alert, AlertStatus, Channel, Delivery, Purpose
from apps.audit.models import AuditEvent
from tests.alerts.conftest import ROUTING_KEY, make_channels

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kind", "fields", "secret", "field", "message"),
    [
        ("webhook", {"url": "not a url"}, "", "url", "not a valid http(s) URL"),
        ("webhook", {"url": "ftp://example.com/x"}, "", "url", "not a valid http(s) URL"),
        ("webhook", {"url": "http://169.254.169.254/latest"}, "", "url", "not an allowed target"),
        ("webhook", {"url": "http://[::ffff:169.254.169.254]/"}, "", "url", "not an allowed"),
        ("webhook", {"url": "https://u:p@example.com/"}, "", "url", "Credentials"),
        ("email", {"emails": "ops@example.com, not-an-email"}, "", "emails", "not-an-email"),
        ("email", {"emails": ""}, "", "emails", "at least one recipient"),
        ("slack", {}, "", "secret", "Slack incoming webhook URL"),
        ("slack", {}, "http://hooks.slack.com/services/x", "secret", "https"),
        ("pagerduty", {}, "short-key", "secret", "32 letters and digits"),
    ],
)
def test_invalid_channels_are_rejected_at_save_with_a_clear_message(
    tenant, kind, fields, secret, field, message
):
    with pytest.raises(ValidationError) as caught:
        services.save_channel(Channel(tenant=tenant, name="c", kind=kind, **fields), secret=secret)
    assert message in " ".join(caught.value.message_dict[field])
    assert not Channel.objects.exists()


def test_private_targets_can_be_blocked_for_multi_tenant_installs(tenant):
    with override_settings(ALERT_BLOCK_PRIVATE_TARGETS=True), pytest.raises(ValidationError):
        services.save_channel(
            Channel(tenant=tenant, name="c", kind="webhook", url="http://10.0.0.5/hook")
        )


def test_secrets_are_encrypted_at_rest_and_never_displayed(tenant, admin_client_for):
    slack_url = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"
    channel, shown = services.save_channel(
        Channel(tenant=tenant, name="pd", kind="pagerduty"), secret=ROUTING_KEY
    )
    slack, _ = services.save_channel(
        Channel(tenant=tenant, name="slack", kind="slack"), secret=slack_url
    )
    assert shown == "" and channel.secret_hint == "…CDEF"
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_ciphertext FROM alerts_channel")
        stored = " ".join(row[0] for row in cursor.fetchall())
    assert ROUTING_KEY not in stored and "XXXXSECRETXXXX" not in stored
    audit = " ".join(str(e.after) for e in AuditEvent.objects.filter(target_type="alerts.channel"))
    assert ROUTING_KEY not in audit and "SECRET" not in audit
    client = admin_client_for(tenant)
    page = client.get(f"/admin/alerts/channel/{slack.pk}/change/").content.decode()
    assert "XXXXSECRETXXXX" not in page and "…XXXX" in page


def test_a_webhook_without_a_secret_gets_one_generated_and_shown_once(tenant):
    channel, shown = services.save_channel(
        Channel(tenant=tenant, name="hook", kind="webhook", url="https://hooks.example.com/x")
    )
    assert len(shown) >= 32 and channel.secret_hint == "…" + shown[-4:]
    hint = channel.secret_hint
    again, shown_again = services.save_channel(channel)
    assert shown_again == "", "an existing secret is kept and not shown again"
    assert again.secret_hint == hint and again.version == 2


def test_admin_rejects_an_invalid_channel_with_the_message_on_the_field(tenant, admin_client_for):
    client = admin_client_for(tenant)
    response = client.post(
        "/admin/alerts/channel/add/",
        {
            "tenant": tenant.pk,
            "name": "ops mail",
            "kind": "email",
            "emails": "nope",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "Not valid email addresses: nope." in response.content.decode()
    assert not Channel.objects.exists()


def test_send_test_queues_a_test_delivery_from_the_admin(tenant, admin_client_for, receiver):
    channel = make_channels(tenant, receiver.url, kinds=("webhook",))["webhook"]
    client = admin_client_for(tenant)
    client.post("/admin/alerts/channel/", {"action": "send_test", "_selected_action": [channel.pk]})
    delivery = Delivery.objects.get()
    assert delivery.purpose == Purpose.TEST and delivery.channel == channel
    from apps.alerts.delivery import deliver_due

    assert deliver_due() == {"delivered": 1}
    assert receiver.processed()[0].json()["event"] == "test"


def _ack_url(tenant, receiver) -> tuple[Alert, str]:
    make_channels(tenant, receiver.url, kinds=("webhook",))
    alert = services.raise_alert(tenant, "slo", 1, "burn", "Burning").alert
    body = payloads.build(Delivery.objects.get())
    return alert, json.loads(body.body)["ack_url"]


def test_an_ack_link_works_once_without_a_session_and_get_changes_nothing(tenant, receiver):
    alert, url = _ack_url(tenant, receiver)
    path = url.removeprefix("http://127.0.0.1:8000")
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(path)
    assert page.status_code == 200 and b"Acknowledge" in page.content
    alert.refresh_from_db()
    assert alert.status == AlertStatus.FIRING, (
        "opening the link (a link scanner) acknowledges nothing"
    )
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1)
    done = browser.post(path, {"csrfmiddlewaretoken": token.decode()})
    assert done.status_code == 200 and b"Acknowledged" in done.content
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == "ack link"
    event = AuditEvent.objects.filter(action="alert.acknowledged").get()
    assert event.actor_label == "ack link"
    again = browser.post(path, {"csrfmiddlewaretoken": token.decode()})
    assert again.status_code == 409


def test_expired_and_tampered_ack_links_are_rejected(tenant, receiver):
    alert, url = _ack_url(tenant, receiver)
    token = url.rsplit("/", 1)[1]
    client = Client()
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert client.post(f"/alerts/ack/{forged}").status_code == 400
    other_purpose = signing.dumps({"n": "x", "a": alert.pk, "p": "resolve"}, salt=links.SALT)
    assert client.post(f"/alerts/ack/{other_purpose}").status_code == 400
    unsalted = signing.dumps({"n": "x", "a": alert.pk, "p": "ack"})
    assert client.post(f"/alerts/ack/{unsalted}").status_code == 400
    with override_settings(ALERT_ACK_LINK_MAX_AGE_SECONDS=-1):
        assert client.post(f"/alerts/ack/{token}").status_code == 410
    alert.refresh_from_db()
    assert alert.status == AlertStatus.FIRING
