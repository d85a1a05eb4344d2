"""The portal's own readiness checks: migrations at head (or at the expected earlier state) and
one smoke query per model of every portal app.

They run against a shadow copy in a child process (`manage.py drill_shadow`) whose default
database is the shadow, the way an operator's `manage.py` would run against a restored database;
the drill's own process never points Django at the shadow."""

from __future__ import annotations

from django.apps import apps as live_apps
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor


def portal_app_labels() -> list[str]:
    return sorted(
        config.label for config in live_apps.get_app_configs() if config.name.startswith("apps.")
    )


def unapplied_migrations(
    wrapper: BaseDatabaseWrapper, targets: list[tuple[str, str | None]] | None = None
) -> list[str]:
    """Migrations that would still run to reach `targets` (default: every app's head)."""
    executor = MigrationExecutor(wrapper)
    targets = targets or executor.loader.graph.leaf_nodes()
    return [
        f"{migration.app_label}.{migration.name}{' (backwards)' if backwards else ''}"
        for migration, backwards in executor.migration_plan(targets)
    ]


def smoke_queries(wrapper: BaseDatabaseWrapper, state_apps=None) -> tuple[int, list[str]]:
    """One `SELECT <every column> ... LIMIT 1` per model of each portal app, with the live
    models or those of a historical migration state. Returns (queries run, problems)."""
    registry = state_apps or live_apps
    labels = set(portal_app_labels())
    quote = wrapper.ops.quote_name
    problems = []
    count = 0
    for model in registry.get_models():
        meta = model._meta
        if meta.app_label not in labels or not meta.managed or meta.proxy:
            continue
        count += 1
        columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
        query = f"SELECT {columns} FROM {quote(meta.db_table)} LIMIT 1"  # noqa: S608 - quoted names
        try:
            with wrapper.cursor() as cursor:
                cursor.execute(query)
                cursor.fetchall()
        except Exception as exc:  # each failure is a finding, reported by model
            problems.append(f"smoke query on {meta.label} failed: {' '.join(str(exc).split())}")
    return count, problems


def readiness_problems(wrapper: BaseDatabaseWrapper) -> tuple[str, list[str]]:
    """(detail, problems) for the live code against the database behind `wrapper`."""
    pending = unapplied_migrations(wrapper)
    problems = []
    if pending:
        problems.append(
            f"migrations not at head: {len(pending)} to apply ({', '.join(pending[:10])})"
        )
    count, smoke = smoke_queries(wrapper)
    problems += smoke
    return f"migrations at head: {not pending}; {count} smoke queries", problems
