"""Row-level security on PostgreSQL, keyed on per-connection settings.

Two settings drive every policy:
- `opsportal.tenant_id`: the tenant whose rows the current request or task may see;
- `opsportal.all_tenants`: `on` for code that is entitled to every tenant (superusers in the
  admin, beat jobs that loop over tenants). API tokens are found before the tenant is known
  by a SECURITY DEFINER function instead (`TOKEN_LOOKUP`), so an API request never needs it.

Policies are (re)applied after every `migrate` to each model with a `tenant` foreign key, so a new
tenant-owned model cannot be forgotten. The portal runs as a role that owns no table (owners
bypass RLS); migrations grant it the DML it needs, and only SELECT/INSERT on the audit log.

The settings are set with `set_config(..., false)` on the connection and always reset when the
context exits (requests and tasks are wrapped), so a pooled connection never leaks a tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, connections

logger = logging.getLogger(__name__)

POLICY_NAME = "tenant_isolation"
# The app role may only read and add rows here: the audit trail and consent records are
# append-only for the running portal, whatever its code does.
APPEND_ONLY_TABLES = {"audit_auditevent", "privacy_consentrecord"}
# The one function the app role may call that reads across tenants (tenancy migration 0003).
TOKEN_LOOKUP = "opsportal_api_token"  # noqa: S105  (a function name, not a secret)
_CLEAN = ("", "off")


def is_postgres(conn=None) -> bool:
    return (conn or connection).vendor == "postgresql"


def on_connection_created(sender, connection, **kwargs) -> None:
    connection._opsportal_scope = _CLEAN
    connection._opsportal_applied = _CLEAN


def _apply(tenant_id: str, all_tenants: str) -> None:
    for conn in _scoped_connections():
        _apply_to(conn, (tenant_id, all_tenants))


def _scoped_connections():
    """The default connection, plus the read replica's when one is configured."""
    return [connections[alias] for alias in settings.DATABASES if is_postgres(connections[alias])]


def _apply_to(conn, target: tuple[str, str]) -> None:
    inside_transaction = conn.in_atomic_block
    if not inside_transaction and getattr(conn, "_opsportal_applied", None) == target:
        conn._opsportal_scope = target
        return
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('opsportal.tenant_id', %s, false),"
            " set_config('opsportal.all_tenants', %s, false)",
            list(target),
        )
    # A rollback reverts settings made inside a transaction, so those are not remembered as
    # applied: the next change re-issues them.
    conn._opsportal_scope = target
    conn._opsportal_applied = None if inside_transaction else target


def current_state() -> tuple[str, str]:
    """The scope the current code asked for (restored when a context exits)."""
    return getattr(connection, "_opsportal_scope", _CLEAN)


@contextmanager
def tenant_context(tenant) -> Iterator[None]:
    """Restrict database reads and writes of this block to one tenant's rows."""
    previous = current_state()
    _apply(str(tenant.pk if hasattr(tenant, "pk") else tenant), "off")
    try:
        yield
    finally:
        _restore(previous)


@contextmanager
def all_tenants_context() -> Iterator[None]:
    """For code entitled to every tenant: superusers, beat jobs, token lookup."""
    previous = current_state()
    _apply("", "on")
    try:
        yield
    finally:
        _restore(previous)


def _restore(previous: tuple[str, str]) -> None:
    try:
        _apply(*previous)
    except Exception:  # an aborted transaction's rollback reverts the settings itself
        logger.warning("could not restore RLS settings now; the rollback will", exc_info=True)
        for conn in _scoped_connections():
            conn._opsportal_scope = previous
            conn._opsportal_applied = None


def set_request_scope(tenant_id: str, all_tenants: bool) -> None:
    """Used by middleware and task hooks that own the whole request or task."""
    _apply(tenant_id, "on" if all_tenants else "off")


def clear_scope() -> None:
    if any(getattr(c, "_opsportal_applied", _CLEAN) != _CLEAN for c in _scoped_connections()):
        _restore(_CLEAN)


def apply_row_level_security(using: str = "default", **kwargs) -> None:
    """post_migrate: enable RLS, policies and grants on every tenant-owned table."""
    conn = connections[using]
    if not is_postgres(conn):
        return
    from apps.tenancy.scoping import tenant_owned_models

    role = settings.DATABASE_APP_ROLE
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        role_exists = cursor.fetchone() is not None
        cursor.execute("SELECT current_user")
        me = cursor.fetchone()[0]
        existing = set(conn.introspection.table_names(cursor))
        for model in tenant_owned_models():
            table = model._meta.db_table
            if table not in existing:
                continue  # migrated backwards past this model (a rollback): nothing to guard
            column = model._meta.get_field("tenant").column
            predicate = (
                "(SELECT current_setting('opsportal.all_tenants', true)) = 'on' OR "
                f"{column} = (SELECT NULLIF(current_setting('opsportal.tenant_id', true), '')"
                "::bigint)"
            )
            cursor.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            cursor.execute(f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}"')
            cursor.execute(
                f'CREATE POLICY {POLICY_NAME} ON "{table}" USING ({predicate}) '
                f"WITH CHECK ({predicate})"
            )
        cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"{TOKEN_LOOKUP}(text)"])
        token_lookup_exists = cursor.fetchone()[0]
        if token_lookup_exists:
            # Always, not only at its migration: a restore with `pg_restore --no-acl` (the DR
            # runbook, the drills) gives a function PostgreSQL's default EXECUTE for PUBLIC.
            cursor.execute(f"REVOKE ALL ON FUNCTION {TOKEN_LOOKUP}(text) FROM PUBLIC")
        if role_exists and role != me:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for (table,) in cursor.fetchall():
                privileges = (
                    "SELECT, INSERT"
                    if table in APPEND_ONLY_TABLES
                    else "SELECT, INSERT, UPDATE, DELETE"
                )
                cursor.execute(f'REVOKE ALL ON "{table}" FROM "{role}"')
                cursor.execute(f'GRANT {privileges} ON "{table}" TO "{role}"')
            cursor.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            cursor.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
            if token_lookup_exists:
                cursor.execute(f'GRANT EXECUTE ON FUNCTION {TOKEN_LOOKUP}(text) TO "{role}"')
        elif not role_exists:
            logger.warning("database role %s does not exist; no grants applied", role)
