"""System checks of our own (run by `manage.py check --deploy`)."""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def encryption_keys(app_configs, **kwargs):
    keys = [k for k in settings.FIELD_ENCRYPTION_KEYS if k.strip()]
    if not keys:
        return [
            Warning(
                "FIELD_ENCRYPTION_KEYS is not set: stored secrets are encrypted with a key "
                "derived from SECRET_KEY, so rotating SECRET_KEY would make them unreadable.",
                hint="Generate one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'` (docs/configuration.md).",
                id="opsportal.W001",
            )
        ]
    errors = []
    for index, key in enumerate(keys):
        try:
            Fernet(key.strip())
        except ValueError:
            errors.append(
                Error(
                    f"FIELD_ENCRYPTION_KEYS[{index}] is not a Fernet key "
                    "(32 url-safe base64-encoded bytes).",
                    id="opsportal.E001",
                )
            )
    return errors
