"""Signed, expiring, single-purpose acknowledge links that work without a session.

The URL carries `signing.dumps({"n": nonce, "a": alert id, "p": "ack"})` under a salt used for
nothing else; the signature proves the portal minted it and when (expiry), and the `AckLink` row
with that nonce makes it single-use. Opening the link (GET) only shows a confirmation page, so
link scanners in mail gateways and Slack unfurls cannot acknowledge anything; the button POSTs.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from apps.alerts.models import AckLink, Alert

SALT = "opsportal.alerts.ack-link.v1"
PURPOSE = "ack"


class LinkError(Exception):
    status = 400


class TamperedLink(LinkError):
    status = 400


class ExpiredLink(LinkError):
    status = 410


class UsedLink(LinkError):
    status = 409


def mint(alert: Alert, nonce: str) -> str:
    """The absolute URL of the ack link `nonce` (one per notification) for this alert."""
    AckLink.objects.get_or_create(nonce=nonce, defaults={"alert": alert, "tenant": alert.tenant})
    token = signing.dumps({"n": nonce, "a": alert.pk, "p": PURPOSE}, salt=SALT)
    return settings.PUBLIC_BASE_URL + reverse("alert-ack-link", args=[token])


def read(token: str) -> AckLink:
    """The link a token names, or a LinkError saying why it cannot be used."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.ALERT_ACK_LINK_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise ExpiredLink("This acknowledge link has expired.") from None
    except signing.BadSignature:
        raise TamperedLink("This acknowledge link is not valid.") from None
    if not isinstance(data, dict) or data.get("p") != PURPOSE:
        raise TamperedLink("This link is not an acknowledge link.")
    link = (
        AckLink.objects.select_related("alert", "alert__tenant")
        .filter(nonce=data.get("n"), alert_id=data.get("a"))
        .first()
    )
    if link is None:
        raise TamperedLink("This acknowledge link is not valid.")
    return link
