"""Writes of the data map: external databases (DSN validated and encrypted), their tables (checked
against the live table), and webhook connectors (URL checked like any outgoing webhook, secret
encrypted and shown once). Shared by the API and the admin."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F

from apps.alerts.validation import validate_target_url
from apps.drills.targets import redact
from apps.privacy.external import check_external_dsn, check_table
from apps.privacy.models import (
    ExternalDatabase,
    ExternalTable,
    PrivacySettings,
    WebhookConnector,
)
from opsportal import crypto


def _unique(model, tenant_id: int, name: str, pk) -> None:
    if model.objects.for_tenant(tenant_id).filter(name=name).exclude(pk=pk).exists():
        raise ValidationError({"name": f"A {model._meta.verbose_name} named {name} exists."})


@contextmanager
def _saving(field: str, message: str) -> Iterator[None]:
    """A concurrent save that wins the unique constraint is a 422 too, not a 500."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise ValidationError({field: message}) from None


def clean_database(database: ExternalDatabase, *, dsn: str | None) -> str | None:
    """ValidationError naming what is wrong; the normalised DSN to store, or None to keep it."""
    if not database.name:
        raise ValidationError({"name": "Name the database (a slug)."})
    _unique(ExternalDatabase, database.tenant_id, database.name, database.pk)
    if dsn:
        return check_external_dsn(dsn)
    if not database.dsn_ciphertext:
        raise ValidationError({"dsn": "An external database needs a PostgreSQL DSN."})
    return None


def save_database(database: ExternalDatabase, *, dsn: str | None = None) -> ExternalDatabase:
    """Validate and encrypt the DSN (422 when malformed, or when it points at the portal's own
    database); keep the stored one when omitted."""
    normalised = clean_database(database, dsn=dsn)
    if normalised:
        database.dsn_ciphertext = crypto.encrypt(normalised)
        database.dsn_hint = redact(normalised)
    with _saving("name", f"A database named {database.name} exists."):
        if database.pk:
            database.version = F("version") + 1
        database.save(audit_action="privacy_database.saved")
    database.refresh_from_db(fields=["version"])
    return database


def clean_table(table: ExternalTable) -> None:
    """Checked against the live table: columns exist, strategies suit their types, the key is
    unique and the subject column is treated."""
    if table.database.tenant_id != table.tenant_id:
        raise ValidationError({"database": "No such database."})
    if "." not in table.table:
        table.table = f"public.{table.table}"
    check_table(table)
    duplicate = ExternalTable.objects.for_tenant(table.tenant_id).filter(
        database=table.database, table=table.table
    )
    if duplicate.exclude(pk=table.pk).exists():
        raise ValidationError({"table": f"{table.table} is already declared."})


def save_table(table: ExternalTable) -> ExternalTable:
    clean_table(table)
    with _saving("table", f"{table.table} is already declared."):
        table.save(audit_action="privacy_table.saved")
    return table


def clean_connector(connector: WebhookConnector, *, secret: str | None) -> None:
    if not connector.name:
        raise ValidationError({"name": "Name the connector (a slug)."})
    _unique(WebhookConnector, connector.tenant_id, connector.name, connector.pk)
    validate_target_url(connector.url)
    if not 1 <= connector.timeout_seconds <= 60:
        raise ValidationError({"timeout_seconds": "Between 1 and 60 seconds."})
    if secret and len(secret) < 16:
        raise ValidationError({"secret": "Use a secret of at least 16 characters."})


def save_connector(connector: WebhookConnector, *, secret: str | None = None) -> str | None:
    """Save a connector; returns a generated secret (shown once) when none was given for a new
    connector, else None."""
    clean_connector(connector, secret=secret)
    generated = None
    if not secret and not connector.secret_ciphertext:
        secret = generated = secrets.token_urlsafe(32)
    if secret:
        connector.secret_ciphertext = crypto.encrypt(secret)
        connector.secret_hint = crypto.hint(secret)
    with _saving("name", f"A connector named {connector.name} exists."):
        if connector.pk:
            connector.version = F("version") + 1
        connector.save(audit_action="privacy_connector.saved")
    connector.refresh_from_db(fields=["version"])
    return generated


def reencrypt_secrets() -> int:
    """`manage.py rotate_secrets`: DSNs, connector secrets and the tenants' keyed-hash secrets
    under the current key (losing the hash key would orphan every subject key)."""
    count = 0
    for model, column in (
        (ExternalDatabase, "dsn_ciphertext"),
        (WebhookConnector, "secret_ciphertext"),
        (PrivacySettings, "hash_key_ciphertext"),
    ):
        for pk, value in model._base_manager.exclude(**{column: ""}).values_list("pk", column):
            model._base_manager.filter(pk=pk).update(**{column: crypto.reencrypt(value)})
            count += 1
    return count


def describe(tenant) -> list[dict]:
    """The data map as a document: every source, its kind and fields (no secrets, no DSNs)."""
    from apps.privacy.sources import sources_for

    found = []
    for source in sources_for(tenant):
        entry = {
            "name": source.name,
            "kind": source.kind,
            "erased_last": source.runs_last,
            "replayable": source.replayable,
            "fields": {name: s.to_dict() for name, s in source.field_specs().items()},
        }
        if source.kind == "postgresql":
            entry["database"] = source.table.database.dsn_hint
            entry["subject"] = {
                "column": source.table.subject_column,
                "kind": source.table.subject_kind,
            }
        if source.kind == "webhook":
            entry["url"] = source.connector.url
        found.append(entry)
    return found
