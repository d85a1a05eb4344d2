"""Migration rollback: what state to go back to, the plan, and which steps cannot be undone.

A state is written three ways:
- ``steps=N``: the last N migrations of every portal app that has more than N applied (an app is
  never unapplied entirely by counting; write ``app=zero`` for that);
- ``app=migration,...`` (``app=zero`` unapplies the whole app); a migration may be named by its
  number prefix (``slo=0001``);
- the path of a JSON file ``{"app": "migration" | null}`` written by ``manage.py
  migration_state`` when a release is tagged (null = the app did not exist yet).

A step is irreversible when Django says so (`Operation.reversible`): RunPython without reverse
code, RunSQL without reverse SQL. They are reported before anything is touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from apps.drills.readiness import portal_app_labels


class StateError(ValueError):
    """The state cannot be understood or does not exist in the migration graph."""


@dataclass
class RollbackPlan:
    state: str
    targets: list[tuple[str, str | None]]
    backward: list[str] = field(default_factory=list)
    irreversible: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "state": self.state,
            "targets": [f"{app}={name or 'zero'}" for app, name in self.targets],
            "backward": self.backward,
            "irreversible": self.irreversible,
        }

    def render_text(self) -> str:
        lines = [f"Rollback to {self.state}"]
        lines.append("Targets: " + ", ".join(self.to_dict()["targets"]))
        if not self.backward:
            lines.append("Nothing to unapply: the database is already at or before this state.")
        else:
            lines.append(f"Migrations to unapply, in order ({len(self.backward)}):")
            lines += [f"  {step}" for step in self.backward]
        if self.irreversible:
            lines.append(f"IRREVERSIBLE steps ({len(self.irreversible)}), the rollback would fail:")
            lines += [f"  {step}" for step in self.irreversible]
        else:
            lines.append("Every step is reversible.")
        return "\n".join(lines)


def current_state(alias: str = "default") -> dict[str, str | None]:
    """{app: latest applied migration or None} for every portal app: a release's state file."""
    loader = MigrationLoader(connections[alias])
    state: dict[str, str | None] = {}
    for app in portal_app_labels():
        if not any(node[0] == app for node in loader.graph.nodes):
            continue  # no migrations (yet)
        applied = [name for app_label, name in loader.applied_migrations if app_label == app]
        leaves = [
            name
            for app_label, name in loader.graph.leaf_nodes()
            if app_label == app and (app_label, name) in loader.applied_migrations
        ]
        state[app] = leaves[0] if leaves else (max(applied) if applied else None)
    return state


def _resolve_name(loader: MigrationLoader, app: str, name: str) -> str | None:
    if name in ("zero", "", None):
        return None
    if app not in loader.migrated_apps:
        raise StateError(f"app {app!r} has no migrations")
    try:
        return loader.get_migration_by_prefix(app, name).name
    except Exception as exc:  # AmbiguityError or KeyError, with Django's message
        raise StateError(f"{app}={name}: {exc}") from None


def parse_state(state: str, alias: str = "default") -> list[tuple[str, str | None]]:
    state = (state or "").strip()
    if not state:
        raise StateError("no state given: use steps=N, app=migration,... or a state file")
    loader = MigrationLoader(connections[alias])
    if state.startswith("steps="):
        try:
            steps = int(state.removeprefix("steps="))
        except ValueError:
            raise StateError(f"{state!r}: steps must be a whole number") from None
        if steps < 1:
            raise StateError("steps must be at least 1")
        return _steps_back(loader, steps)
    if "=" in state and Path(state).suffix != ".json":
        targets = []
        for part in state.split(","):
            app, _, name = part.strip().partition("=")
            if not app or not _:
                raise StateError(f"{part!r}: write app=migration")
            targets.append((app, _resolve_name(loader, app, name.strip())))
        return targets
    path = Path(state)
    if not path.is_file():
        raise StateError(f"{state}: no such state file (and not steps=N or app=migration)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StateError(f"{state}: not a JSON state file ({exc})") from None
    if not isinstance(data, dict):
        raise StateError(f"{state}: expected an object of app: migration")
    data = data.get("migrations", data)
    return [(app, _resolve_name(loader, app, name or "zero")) for app, name in sorted(data.items())]


def _steps_back(loader: MigrationLoader, steps: int) -> list[tuple[str, str | None]]:
    """Each portal app `steps` migrations back along its own applied history."""
    targets = []
    for app in portal_app_labels():
        applied = sorted(name for app_label, name in loader.applied_migrations if app_label == app)
        if len(applied) <= steps:
            continue  # never uninstall an app by counting; write app=zero for that
        # Follow the app's own chain from its applied leaf backwards.
        chain = []
        node = next(
            ((a, n) for a, n in loader.graph.leaf_nodes() if a == app and n in applied),
            (app, applied[-1]),
        )
        while node is not None:
            chain.append(node[1])
            parents = [p for p in loader.graph.node_map[node].parents if p[0] == app]
            node = parents[0] if parents else None
        if steps < len(chain):
            targets.append((app, chain[steps]))
    return targets


def plan(state: str, alias: str = "default") -> RollbackPlan:
    """The backwards plan from the database behind `alias` to `state`, touching nothing."""
    targets = parse_state(state, alias)
    executor = MigrationExecutor(connections[alias])
    steps = executor.migration_plan(targets)
    result = RollbackPlan(state=state, targets=targets)
    for migration, backwards in steps:
        label = f"{migration.app_label}.{migration.name}"
        if not backwards:
            # A state ahead of the database: not a rollback, refuse it rather than migrate.
            raise StateError(
                f"{label} is not applied: the state is not behind the database; a rollback "
                "only unapplies migrations"
            )
        result.backward.append(label)
        for index, operation in enumerate(migration.operations):
            if not operation.reversible:
                result.irreversible.append(
                    f"{label} operation {index + 1} ({type(operation).__name__}: "
                    f"{operation.describe()})"
                )
    return result


def migrate(wrapper: BaseDatabaseWrapper, targets: list[tuple[str, str | None]]) -> list[str]:
    """Apply the plan to `targets` on the connection (backwards or forwards); return the steps."""
    executor = MigrationExecutor(wrapper)
    steps = executor.migration_plan(targets)
    executor.migrate(targets, plan=steps)
    return [f"{m.app_label}.{m.name}{' (backwards)' if b else ''}" for m, b in steps]


def state_apps(wrapper: BaseDatabaseWrapper):
    """The historical models of what is applied on the connection now, for smoke queries
    against a rolled-back copy (current models describe tables that state does not have)."""
    loader = MigrationLoader(wrapper)
    nodes = [node for node in loader.applied_migrations if node in loader.graph.nodes]
    return loader.project_state(nodes).apps


def still_applied(wrapper: BaseDatabaseWrapper, steps: list[str]) -> list[str]:
    """Which of the migrations a rollback had to unapply are still recorded as applied."""
    applied = MigrationLoader(wrapper).applied_migrations
    return [step for step in steps if tuple(step.split(".", 1)) in applied]


def heads(wrapper: BaseDatabaseWrapper) -> list[tuple[str, str]]:
    return MigrationExecutor(wrapper).loader.graph.leaf_nodes()
