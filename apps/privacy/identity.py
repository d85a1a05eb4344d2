"""Who a request is about, and the keyed hashes that stand for a subject once their data is gone.

Every tenant has its own hash key (random, 32 bytes, stored encrypted in PrivacySettings). A
subject key is HMAC-SHA-256(key, "<kind>:<normalised value>"): stable for the same email or
external id, useless without the tenant's key, and different between tenants. The same key
pseudonymises fields masked with the `keyed_hash` strategy, with a different prefix, so a masked
value never equals a subject key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db import transaction

from opsportal import crypto


@dataclass(frozen=True)
class Identity:
    email: str = ""
    external_id: str = ""

    @classmethod
    def of(cls, email: str = "", external_id: str = "") -> Identity:
        return cls(
            email=normalise("email", email), external_id=normalise("external_id", external_id)
        )

    def value(self, kind: str) -> str:
        return self.email if kind == "email" else self.external_id

    def __bool__(self) -> bool:
        return bool(self.email or self.external_id)


def normalise(kind: str, value: str) -> str:
    value = (value or "").strip()
    return value.lower() if kind == "email" else value


def hash_key(tenant) -> bytes:
    """The tenant's key, created on first use (under a row lock, so two workers agree). One
    read per call: callers that hash many values fetch it once and use `pseudonym`/`hmac_of`."""
    from apps.privacy.models import PrivacySettings

    tenant_id = getattr(tenant, "pk", tenant)
    found = (
        PrivacySettings.objects.filter(tenant_id=tenant_id)
        .values_list("hash_key_ciphertext", flat=True)
        .first()
    )
    if found:
        return bytes.fromhex(crypto.decrypt(found))
    with transaction.atomic():
        settings_row, _ = PrivacySettings.objects.select_for_update().get_or_create(
            tenant_id=tenant_id
        )
        if not settings_row.hash_key_ciphertext:
            settings_row.hash_key_ciphertext = crypto.encrypt(secrets.token_hex(32))
            PrivacySettings.objects.filter(pk=settings_row.pk).update(
                hash_key_ciphertext=settings_row.hash_key_ciphertext
            )
    return bytes.fromhex(crypto.decrypt(settings_row.hash_key_ciphertext))


def hmac_of(key: bytes, kind: str, value: str) -> str:
    normalised = normalise(kind, value)
    if not normalised:
        return ""
    return hmac.new(key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def subject_key(tenant, kind: str, value: str) -> str:
    return hmac_of(hash_key(tenant), kind, value)


def request_key(tenant, identity: Identity) -> str:
    """The one key a request is filed under: the email's, else the external id's."""
    if identity.email:
        return subject_key(tenant, "email", identity.email)
    return subject_key(tenant, "external_id", identity.external_id)


def keys_of(tenant, identity: Identity) -> list[str]:
    key = hash_key(tenant)
    found = (
        hmac_of(key, "email", identity.email),
        hmac_of(key, "external_id", identity.external_id),
    )
    return [value for value in found if value]


def pseudonym(key: bytes, value: object) -> str:
    """The keyed_hash masking of one value: 'h:' and 32 hex characters of HMAC-SHA-256."""
    digest = hmac.new(key, b"mask:" + str(value).encode(), hashlib.sha256).hexdigest()
    return f"h:{digest[:32]}"
