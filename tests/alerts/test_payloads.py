"""Slack and PagerDuty bodies validated against schemas written from their documentation; the
webhook signature; email content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from apps.alerts import payloads, services
from apps.alerts.models import Delivery, Purpose
from tests.alerts.conftest import ROUTING_KEY, WEBHOOK_SECRET, make_channels

pytestmark = pytest.mark.django_db
SCHEMAS = Path(__file__).parent / "schemas"


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


PAGERDUTY = _validator("pagerduty_events_v2.json")
SLACK = _validator("slack_incoming_webhook.json")


def _body(tenant, kind: str, purpose: str = Purpose.TRIGGER) -> dict:
    delivery = Delivery.objects.filter(channel__kind=kind, purpose=purpose).latest("id")
    return json.loads(payloads.build(delivery).body)


@pytest.fixture
def fired(tenant, receiver):
    make_channels(tenant, receiver.url)
    return services.raise_alert(
        tenant,
        "compliance",
        1,
        "R07:acme/web#42",
        "BLOCK violation R07 <secrets> & keys in acme/web " + "x" * 200,
        "Hard-coded AWS key found in `settings.py` line 12 <script>" + "y" * 4000,
        {"rule": "R07", "repository": "acme/web"},
        [{"href": "https://ci.example.com/run/42", "text": "CI run"}],
    ).alert


def test_pagerduty_trigger_acknowledge_and_resolve_match_the_events_v2_schema(tenant, fired):
    trigger = _body(tenant, "pagerduty")
    assert not list(PAGERDUTY.iter_errors(trigger)), list(PAGERDUTY.iter_errors(trigger))
    assert trigger["routing_key"] == ROUTING_KEY and trigger["payload"]["severity"] == "critical"
    services.acknowledge_alert(fired, "alice")
    services.close_alert(fired, "alice")
    for purpose, action in ((Purpose.ACKNOWLEDGE, "acknowledge"), (Purpose.RESOLVE, "resolve")):
        body = _body(tenant, "pagerduty", purpose)
        assert not list(PAGERDUTY.iter_errors(body))
        assert body["event_action"] == action
        assert body["dedup_key"] == trigger["dedup_key"], "one incident, one dedup key"


def test_a_broken_pagerduty_body_fails_the_schema():
    """The schema is strict enough to catch a wrong severity or a trigger without payload."""
    bad = {"routing_key": ROUTING_KEY, "event_action": "trigger"}
    assert list(PAGERDUTY.iter_errors(bad))
    worse = {**bad, "payload": {"summary": "s", "source": "x", "severity": "fatal"}}
    assert list(PAGERDUTY.iter_errors(worse))


def test_slack_body_matches_block_kit_limits_and_escapes_markup(tenant, fired):
    body = _body(tenant, "slack")
    assert not list(SLACK.iter_errors(body)), list(SLACK.iter_errors(body))
    section = next(b for b in body["blocks"] if b["type"] == "section")
    assert "&lt;script&gt;" in section["text"]["text"] and "<script>" not in section["text"]["text"]
    buttons = next(b for b in body["blocks"] if b["type"] == "actions")["elements"]
    assert buttons[0]["text"]["text"] == "Acknowledge" and "/alerts/ack/" in buttons[0]["url"]
    too_long = {
        **body,
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    }
    assert list(SLACK.iter_errors(too_long))


def test_webhook_is_signed_over_timestamp_and_body(tenant, fired):
    delivery = Delivery.objects.get(channel__kind="webhook")
    outgoing = payloads.build(delivery)
    stamp = outgoing.headers[payloads.TIMESTAMP_HEADER]
    assert outgoing.headers == {
        **outgoing.headers,
        "Idempotency-Key": str(delivery.idempotency_key),
        payloads.SIGNATURE_HEADER: payloads.sign(WEBHOOK_SECRET, outgoing.body, int(stamp))[
            payloads.SIGNATURE_HEADER
        ],
    }
    tampered = payloads.sign(WEBHOOK_SECRET, outgoing.body + b" ", int(stamp))
    assert tampered[payloads.SIGNATURE_HEADER] != outgoing.headers[payloads.SIGNATURE_HEADER]
    body = json.loads(outgoing.body)
    assert body["event"] == "trigger" and body["alert"]["dedup_key"] == "R07:acme/web#42"
    assert body["idempotency_key"] == str(delivery.idempotency_key)


def test_email_carries_the_ack_link_and_links(tenant, receiver):
    make_channels(tenant, receiver.url, kinds=("email",))
    services.raise_alert(
        tenant,
        "drills",
        1,
        "d",
        "Restore drill failed",
        "RTO missed",
        {},
        [{"href": "https://x.example/run", "text": "Run"}],
    )
    outgoing = payloads.build(Delivery.objects.get())
    assert outgoing.subject == "[opsportal][T1] Restore drill failed"
    assert outgoing.to == ["oncall@example.com"]
    assert "/alerts/ack/" in outgoing.text and "Run: https://x.example/run" in outgoing.text
