"""Encryption at rest for secrets the portal must be able to read back (channel webhook URLs,
routing keys, signing secrets, external DSNs).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`, behind a MultiFernet so keys can rotate:
`FIELD_ENCRYPTION_KEYS` lists keys newest first; the first encrypts, all decrypt, and
`manage.py rotate_secrets` re-encrypts every stored secret with the first. Without the setting a
key is derived from SECRET_KEY (fine for development; `check --deploy` warns in production,
because rotating SECRET_KEY would then make stored secrets unreadable).
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

__all__ = ["InvalidToken", "decrypt", "encrypt", "hint", "reencrypt"]


def _derived_key() -> bytes:
    digest = hashlib.sha256(b"opsportal.crypto.v1:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@functools.cache
def _fernet() -> MultiFernet:
    keys = [k.strip() for k in settings.FIELD_ENCRYPTION_KEYS if k.strip()] or [_derived_key()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    return _fernet().decrypt(ciphertext.encode()).decode()


def reencrypt(ciphertext: str) -> str:
    """The same secret under the current (first) key."""
    return _fernet().rotate(ciphertext.encode()).decode()


def hint(secret: str, visible: int = 4) -> str:
    """What the admin may show of a secret again: its last few characters."""
    if not secret:
        return ""
    return "…" + secret[-visible:] if len(secret) > visible * 2 else "…"
