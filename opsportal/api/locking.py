"""Optimistic locking: `version` on editable rows, ETag/If-Match on the API.

A stale body `version` gets 409 Conflict; a stale `If-Match` gets 412 Precondition Failed. The
update itself is a compare-and-swap (`UPDATE … WHERE version = n`), so two writers racing past the
check cannot both win.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, Model

from opsportal.api.problems import Conflict, PreconditionFailed


def etag_for(instance: Model) -> str:
    return f'"{instance._meta.label_lower}:{instance.pk}:v{instance.version}"'


def check_preconditions(instance: Model, if_match: str | None, body_version: Any) -> None:
    if (
        if_match
        and if_match.strip() != "*"
        and etag_for(instance) not in [tag.strip() for tag in if_match.split(",")]
    ):
        raise PreconditionFailed()
    if body_version is not None and int(body_version) != instance.version:
        raise Conflict(f"Stale version {body_version}: the current version is {instance.version}.")


def save_with_version(instance: Model, expected_version: int, **changes: Any) -> Model:
    """Apply `changes` only if the row still has `expected_version`; bump version."""
    updated = (
        type(instance)
        ._base_manager.filter(pk=instance.pk, version=expected_version)
        .update(version=F("version") + 1, **changes)
    )
    if updated != 1:
        raise Conflict("The resource was changed by someone else; reload and retry.")
    instance.refresh_from_db()
    return instance
