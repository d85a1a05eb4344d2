"""Signed, expiring, single-purpose acknowledge links that work without a session.

The URL carries `signing.dumps({"n": nonce, "a": alert id, "p": "ack"})` under a salt used for
nothing else: the signature proves the portal minted it and when (expiry), so minting costs no
database write. Using a link inserts an `AckLink` row with its nonce; the unique nonce makes the
link single-use. Opening the link (GET) only shows a confirmation page, so link scanners in mail
gateways and Slack unfurls cannot acknowledge anything; the button POSTs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import get_script_prefix, get_urlconf, reverse

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


@dataclass
class Link:
    alert: Alert
    nonce: str

    @property
    def used(self) -> bool:
        return AckLink.objects.filter(nonce=self.nonce).exists()

    def use(self) -> None:
        """Mark the link used; raises UsedLink if it already was (also under concurrency)."""
        try:
            with transaction.atomic():
                AckLink.objects.create(
                    nonce=self.nonce,
                    alert=self.alert,
                    tenant_id=self.alert.tenant_id,
                )
        except IntegrityError:
            raise UsedLink("This acknowledge link has already been used.") from None


def mint(alert: Alert, nonce: str) -> str:
    """The absolute URL of the ack link `nonce` (one per notification) for this alert."""
    token = signing.dumps({"n": nonce, "a": alert.pk, "p": PURPOSE}, salt=SALT)
    before, after = _path_around_token(get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())
    return settings.PUBLIC_BASE_URL + before + token + after


@functools.lru_cache(maxsize=16)
def _path_around_token(urlconf, script_prefix: str) -> tuple[str, str]:
    """The ack view's path split around its token, reversed once per URLconf and prefix (one
    `reverse()` per notification was a tenth of the engine's time per delivery). A token is
    URL-safe base64 and colons, which `reverse()` leaves as they are, so the two agree."""
    marker = "TOKEN"
    before, _, after = reverse("alert-ack-link", args=[marker], urlconf=urlconf).partition(marker)
    return before, after


def read(token: str) -> Link:
    """The link a token names, or a LinkError saying why it cannot be used."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.ALERT_ACK_LINK_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise ExpiredLink("This acknowledge link has expired.") from None
    except signing.BadSignature:
        raise TamperedLink("This acknowledge link is not valid.") from None
    if not isinstance(data, dict) or data.get("p") != PURPOSE or not data.get("n"):
        raise TamperedLink("This link is not an acknowledge link.")
    alert = Alert.objects.select_related("tenant").filter(pk=data.get("a")).first()
    if alert is None:
        raise TamperedLink("This acknowledge link is not valid.")
    return Link(alert=alert, nonce=str(data["n"]))
