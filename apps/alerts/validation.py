"""Validation of channel settings at save time, and the address guard used again at send time.

Webhook URLs are user input that the worker will request, so they are checked like any SSRF
surface: http(s) only, no credentials in the URL, never link-local addresses (cloud metadata
services live there), and no private or loopback addresses when ALERT_BLOCK_PRIVATE_TARGETS is on
(recommended for multi-tenant installations; off by default for single-team installs whose
receivers live on the internal network).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from apps.alerts.models import ChannelKind

PAGERDUTY_ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
_url = URLValidator(schemes=["http", "https"])
_email = EmailValidator()


def _blocked_address(address: ipaddress._BaseAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        return "link-local, multicast and unspecified addresses are never allowed"
    if settings.ALERT_BLOCK_PRIVATE_TARGETS and (address.is_private or address.is_loopback):
        return "private and loopback addresses are blocked (ALERT_BLOCK_PRIVATE_TARGETS)"
    return None


def validate_target_url(value: str, *, field: str = "url") -> None:
    try:
        _url(value)
    except ValidationError:
        raise ValidationError({field: f"{value!r} is not a valid http(s) URL."}) from None
    parts = urlsplit(value)
    if parts.username or parts.password:
        raise ValidationError({field: "Credentials in the URL are not allowed; use the secret."})
    host = parts.hostname or ""
    try:
        reason = _blocked_address(ipaddress.ip_address(host))
    except ValueError:
        reason = None  # a host name: checked again, resolved, at send time
    if reason:
        raise ValidationError({field: f"{host} is not an allowed target: {reason}."})


def check_resolved_target(url: str) -> None:
    """At send time: refuse a host name that resolves to a blocked address."""
    host = urlsplit(url).hostname or ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:  # no lookup needed
        reason = _blocked_address(literal)
        if reason:
            raise PermissionError(f"{host} is a blocked address: {reason}")
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        reason = _blocked_address(ipaddress.ip_address(info[4][0]))
        if reason:
            raise PermissionError(f"{host} resolves to a blocked address: {reason}")


def validate_channel(kind: str, *, url: str, emails: str, secret: str, has_secret: bool) -> None:
    """Raise a ValidationError naming the field, before anything is written."""
    if kind not in ChannelKind.values:
        raise ValidationError({"kind": f"Unknown channel kind {kind!r}."})
    if kind == ChannelKind.EMAIL:
        addresses = [a.strip() for a in emails.replace("\n", ",").split(",") if a.strip()]
        if not addresses:
            raise ValidationError({"emails": "An email channel needs at least one recipient."})
        bad = [a for a in addresses if not _is_email(a)]
        if bad:
            raise ValidationError({"emails": f"Not valid email addresses: {', '.join(bad)}."})
        return
    if kind == ChannelKind.SLACK:
        if not secret and not has_secret:
            raise ValidationError({"secret": "Paste the Slack incoming webhook URL."})
        if secret:
            validate_target_url(secret, field="secret")
            host = urlsplit(secret).hostname or ""
            if urlsplit(secret).scheme != "https" and host not in ("127.0.0.1", "localhost"):
                raise ValidationError({"secret": "Slack webhook URLs use https."})
        return
    if kind == ChannelKind.PAGERDUTY:
        if not secret and not has_secret:
            raise ValidationError({"secret": "Paste the PagerDuty integration (routing) key."})
        if secret and not PAGERDUTY_ROUTING_KEY.match(secret):
            raise ValidationError(
                {"secret": "A PagerDuty routing key is 32 letters and digits (Events API v2)."}
            )
        if url:
            validate_target_url(url)
        return
    if not url:
        raise ValidationError({"url": "A webhook channel needs the receiver URL."})
    validate_target_url(url)
    if secret and len(secret) < 16:
        raise ValidationError({"secret": "A signing secret needs at least 16 characters."})


def _is_email(value: str) -> bool:
    try:
        _email(value)
    except ValidationError:
        return False
    return True
