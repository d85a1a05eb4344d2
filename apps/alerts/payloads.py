"""What each channel receives. Built in the worker's main thread (it reads the database and
mints ack links); the sending threads only get the finished `Outgoing` request.

Shapes follow the receivers' documentation: Slack incoming webhooks with Block Kit, PagerDuty
Events API v2 (`trigger` / `acknowledge` / `resolve` sharing one `dedup_key`), a signed JSON
webhook, and plain-text email. Tests validate the Slack and PagerDuty bodies against JSON schemas
written from those documents (tests/alerts/schemas/).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.alerts.links import mint
from apps.alerts.models import Alert, ChannelKind, Delivery, DigestKind, Purpose, Tier
from opsportal import crypto

SIGNATURE_HEADER = "X-Opsportal-Signature"
TIMESTAMP_HEADER = "X-Opsportal-Timestamp"
PAGERDUTY_SEVERITY = {Tier.CRITICAL: "critical", Tier.HIGH: "error", Tier.LOW: "warning"}
USER_AGENT = "opsportal-alerts/1"
DIGEST_LIST_LIMIT = 20
# Slack: header text ≤ 150 chars, section text ≤ 3000, at most 50 blocks and 25 action buttons.
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000


@dataclass
class Outgoing:
    """One request to make: HTTP (url/body/headers) or email (subject/body/to)."""

    kind: str
    url: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    subject: str = ""
    text: str = ""
    html: str = ""
    to: list[str] = field(default_factory=list)
    skip_reason: str = ""


def build(delivery: Delivery, *, secret: str | None = None) -> Outgoing:
    """The request for one delivery. `secret` is the channel's decrypted secret when the caller
    already has it (the engine decrypts once per channel and batch)."""
    channel = delivery.channel
    kind = channel.kind
    message = _message(delivery)
    if kind == ChannelKind.EMAIL:
        return Outgoing(
            kind=kind,
            subject=message["subject"],
            text=message.get("text") or _email_text(message),
            html=message.get("html", ""),
            to=channel.recipients(),
            headers={"X-Opsportal-Idempotency-Key": str(delivery.idempotency_key)},
        )
    if secret is None:
        secret = crypto.decrypt(channel.secret_ciphertext) if channel.secret_ciphertext else ""
    if kind == ChannelKind.SLACK:
        return _json(kind, secret, slack_body(message), delivery)
    if kind == ChannelKind.PAGERDUTY:
        url = channel.url or settings.PAGERDUTY_EVENTS_URL
        return _json(kind, url, pagerduty_body(delivery, message, secret), delivery)
    body = json.dumps(webhook_body(delivery, message), separators=(",", ":")).encode()
    outgoing = Outgoing(kind=kind, url=channel.url, body=body, headers=_json_headers(delivery))
    outgoing.headers.update(sign(secret, body))
    return outgoing


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """`v1=` HMAC-SHA256 over "<timestamp>.<body>": receivers recompute it, compare in constant
    time, and reject timestamps older than their tolerance (docs/alerts-channels.md)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"v1={digest}"}


def _json_headers(delivery: Delivery) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": str(delivery.idempotency_key),
    }


def _json(kind: str, url: str, body: dict, delivery: Delivery) -> Outgoing:
    return Outgoing(
        kind=kind,
        url=url,
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers=_json_headers(delivery),
    )


def _alert_dict(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "source": alert.source,
        "tier": alert.tier,
        "dedup_key": alert.dedup_key,
        "title": alert.title,
        "summary": alert.summary,
        "details": alert.details,
        "links": alert.links,
        "status": alert.status,
        "count": alert.count,
        "first_seen_at": alert.first_seen_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
    }


def _message(delivery: Delivery) -> dict[str, Any]:
    """The channel-neutral content of a notification."""
    tenant = delivery.channel.tenant
    if delivery.purpose == Purpose.TEST:
        return {
            "purpose": "test",
            "subject": f"[opsportal] Test notification for channel {delivery.channel.name}",
            "title": f"Test notification for {delivery.channel.name}",
            "summary": "If you can read this, the channel works.",
            "tier": Tier.LOW,
            "tenant": tenant.slug,
            "alerts": [],
        }
    if delivery.digest_id and delivery.digest.kind == DigestKind.REPORT:
        return _report_message(delivery.digest, tenant.slug)
    if delivery.digest_id:
        digest = delivery.digest
        alerts = list(digest.alerts.order_by("-tier", "first_seen_at")[:DIGEST_LIST_LIMIT])
        total = digest.figures.get("alerts", len(alerts))
        label = {"batch": "Batch", "daily": "Daily summary", "weekly": "Weekly summary"}
        title = f"{label.get(digest.kind, digest.kind)}: {total} tier-{digest.tier} alert(s)"
        return {
            "purpose": "digest",
            "subject": f"[opsportal][T{digest.tier}] {title}",
            "title": title,
            "summary": f"Period {digest.period_key}.",
            "tier": digest.tier,
            "tenant": tenant.slug,
            "digest": {"kind": digest.kind, "period": digest.period_key, **digest.figures},
            "alerts": [
                {**_alert_dict(a), "ack_url": mint(a, f"{delivery.idempotency_key.hex}{a.pk}")}
                for a in alerts
            ],
        }
    alert = delivery.alert
    prefix = {
        Purpose.REPEAT: "Still firing: ",
        Purpose.ESCALATION: "ESCALATED, not acknowledged: ",
        Purpose.ACKNOWLEDGE: "Acknowledged: ",
        Purpose.RESOLVE: "Resolved: ",
    }.get(delivery.purpose, "")
    actionable = delivery.purpose in (Purpose.TRIGGER, Purpose.REPEAT, Purpose.ESCALATION)
    return {
        "purpose": delivery.purpose,
        "subject": f"[opsportal][T{alert.tier}] {prefix}{alert.title}",
        "title": prefix + alert.title,
        "summary": alert.summary,
        "tier": alert.tier,
        "tenant": tenant.slug,
        "alert": _alert_dict(alert),
        "ack_url": mint(alert, delivery.idempotency_key.hex) if actionable else "",
        "alerts": [],
    }


def _report_message(digest, tenant_slug: str) -> dict[str, Any]:
    """A report sent as a digest (e.g. the daily SLO report): its figures carry the rendered
    title, summary, Slack lines, plain text and HTML."""
    figures = digest.figures
    return {
        "purpose": "digest",
        "subject": f"[opsportal] {figures.get('title', digest.period_key)}",
        "title": figures.get("title", digest.period_key),
        "summary": figures.get("summary", ""),
        "tier": digest.tier,
        "tenant": tenant_slug,
        "digest": {"kind": digest.kind, "period": digest.period_key, "url": figures.get("url")},
        "alerts": [],
        "lines": figures.get("lines", []),
        "text": figures.get("text", ""),
        "html": figures.get("html", ""),
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(message: dict[str, Any]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": message["title"][:SLACK_HEADER_MAX]},
        }
    ]
    if message["summary"]:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _slack_escape(message["summary"])[:SLACK_TEXT_MAX],
                },
            }
        )
    lines = [
        f"• *{_slack_escape(a['title'])}* ({a['source']}, x{a['count']}) <{a['ack_url']}|ack>"
        for a in message["alerts"]
    ]
    lines += message.get("lines", [])  # already mrkdwn-escaped by the report's renderer
    if lines:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}
        )
    alert = message.get("alert")
    context = f"tier {message['tier']} · tenant {message['tenant']}"
    if alert:
        context += f" · {alert['source']} · seen {alert['count']} times"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    buttons = []
    if message.get("ack_url"):
        buttons.append(
            {
                "type": "button",
                "action_id": "ack",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "url": message["ack_url"],
            }
        )
    for index, link in enumerate((alert or {}).get("links", [])[:4]):
        if isinstance(link, dict) and link.get("href"):
            buttons.append(
                {
                    "type": "button",
                    "action_id": f"link-{index}",
                    "text": {"type": "plain_text", "text": str(link.get("text") or "Open")[:75]},
                    "url": link["href"][:3000],
                }
            )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": message["subject"][:SLACK_TEXT_MAX], "blocks": blocks}


def pagerduty_dedup_key(delivery: Delivery) -> str:
    if delivery.alert_id:
        return f"opsportal:{delivery.channel.tenant.slug}:{delivery.alert.dedup_key}"[:255]
    return f"opsportal:{delivery.channel.tenant.slug}:{delivery.idempotency_key}"


def pagerduty_body(delivery: Delivery, message: dict[str, Any], routing_key: str) -> dict:
    action = {Purpose.ACKNOWLEDGE: "acknowledge", Purpose.RESOLVE: "resolve"}.get(
        delivery.purpose, "trigger"
    )
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": pagerduty_dedup_key(delivery),
    }
    if action != "trigger":
        return body
    alert = message.get("alert") or {}
    body["payload"] = {
        "summary": message["title"][:1024],
        "source": f"opsportal/{message['tenant']}",
        "severity": PAGERDUTY_SEVERITY.get(message["tier"], "info"),
        "timestamp": alert.get("first_seen_at") or timezone.now().isoformat(),
        "component": alert.get("source", "opsportal"),
        "group": message["tenant"],
        "class": alert.get("source", message["purpose"]),
        "custom_details": {
            "summary": message["summary"],
            "details": alert.get("details", {}),
            "count": alert.get("count", len(message["alerts"])),
        },
    }
    body["client"] = "opsportal"
    body["client_url"] = settings.PUBLIC_BASE_URL + "/admin/alerts/alert/"
    links = []
    if message.get("ack_url"):
        links.append({"href": message["ack_url"], "text": "Acknowledge in opsportal"})
    for link in alert.get("links", [])[:4]:
        if isinstance(link, dict) and link.get("href"):
            links.append({"href": link["href"], "text": str(link.get("text") or link["href"])})
    if links:
        body["links"] = links
    return body


def webhook_body(delivery: Delivery, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "1",
        "event": delivery.purpose,
        "idempotency_key": str(delivery.idempotency_key),
        "sent_at": timezone.now().isoformat(),
        "tenant": message["tenant"],
        "title": message["title"],
        "summary": message["summary"],
        "tier": message["tier"],
        "alert": message.get("alert"),
        "ack_url": message.get("ack_url", ""),
        "digest": message.get("digest"),
        "alerts": message["alerts"],
    }


def _email_text(message: dict[str, Any]) -> str:
    lines = [message["title"], "", message["summary"] or "", ""]
    alert = message.get("alert")
    if alert:
        lines += [
            f"Tier: {alert['tier']}   Source: {alert['source']}   Seen: {alert['count']} time(s)",
            f"First seen: {alert['first_seen_at']}",
        ]
        for link in alert.get("links", []):
            if isinstance(link, dict) and link.get("href"):
                lines.append(f"{link.get('text') or 'Link'}: {link['href']}")
    for item in message["alerts"]:
        lines.append(f"- [{item['source']}] {item['title']} (x{item['count']}) {item['ack_url']}")
    if message.get("ack_url"):
        lines += ["", f"Acknowledge (stops escalation and repeats): {message['ack_url']}"]
    lines += ["", f"Tenant: {message['tenant']} · sent by opsportal"]
    return "\n".join(lines)
