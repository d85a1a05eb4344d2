"""Optimistic locking: `version` on editable rows, ETag/If-Match on the API.

A stale body `version` gets 409 Conflict; a stale `If-Match` gets 412 Precondition Failed. Services
check under `select_for_update()`, so two writers racing past the check cannot both win.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from opsportal.api.problems import Conflict, PreconditionFailed, PreconditionRequired


def etag_for(instance: Model) -> str:
    return f'"{instance._meta.label_lower}:{instance.pk}:v{instance.version}"'


def check_preconditions(instance: Model, if_match: str | None, body_version: Any) -> None:
    """An update must say which version it read: lost updates are refused, not merged."""
    if not if_match and body_version is None:
        raise PreconditionRequired()
    if (
        if_match
        and if_match.strip() != "*"
        and etag_for(instance) not in [tag.strip() for tag in if_match.split(",")]
    ):
        raise PreconditionFailed()
    if body_version is not None and int(body_version) != instance.version:
        raise Conflict(f"Stale version {body_version}: the current version is {instance.version}.")
