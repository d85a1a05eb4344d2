"""Running a drill: the steps of both kinds, on PostgreSQL or SQLite, with one lock, a disk check,
phase timings and a shadow database that is always dropped.

backup_restore: preflight (reachable, disk >= DRILL_DISK_FACTOR x database size, orphaned
shadows dropped) -> backup (fresh, in an exported snapshot with the source's checksums, or the
latest stored one) -> SHA-256 re-check of the file -> restore into a new shadow -> the shadow's
checksums, schema and sequences against the source's -> pg_amcheck / integrity_check -> the
portal's readiness checks -> drop. RTO = restore + verification time; RPO = age of the backup
when the restore began.

migration_rollback: the plan and its irreversible steps first (refused before anything is
touched when there are any) -> backup and restore as above -> migrate the shadow backwards to the
state -> Django's checks and smoke queries with that state's models -> forward to head ->
readiness, and the schema after the round trip against the restored one. Its RTO is the time the
rollback itself took (backwards migration and checks).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone

from apps.drills import backups, pgtools, rollback, verify
from apps.drills.models import DrillKind
from apps.drills.pg_backend import PostgresBackend, describe_connection_error
from apps.drills.report import BackupInfo, DrillReport, TableCheck
from apps.drills.sqlite_backend import SQLiteBackend
from apps.drills.targets import Target
from apps.drills.verify import SourceManifest

LOCK_NAME = "opsportal.drills"


class Refused(Exception):
    """The drill did not start: another is running, or there is not enough disk."""


@dataclass
class DrillOptions:
    kind: str = DrillKind.BACKUP_RESTORE
    rto_target_seconds: float = 900
    rpo_target_seconds: float = 86400
    use_latest_backup: bool = False
    rollback_to: str = "steps=1"
    dry_run: bool = False
    jobs: int = 0
    label: str = "adhoc"
    tenant_id: int | None = None
    drill_id: int | None = None
    should_cancel: Callable[[], bool] = field(default=lambda: False)
    # Test hook: called with (backend, shadow) after the restore, before verification.
    after_restore: Callable | None = None
    # Called with the report after each phase, so a run's progress can be stored.
    on_progress: Callable[[DrillReport], None] | None = None


def backend_for(target: Target, options: DrillOptions):
    jobs = options.jobs or settings.DRILL_RESTORE_JOBS
    cls = SQLiteBackend if target.engine == "sqlite" else PostgresBackend
    return cls(target, jobs=jobs, should_cancel=options.should_cancel)


# --- the lock -------------------------------------------------------------------------------


@contextmanager
def drill_lock() -> Iterator[bool]:
    """One drill at a time for the whole portal: a session advisory lock in the portal's
    PostgreSQL database (held by a connection of its own, released if the process dies), or a
    file lock next to the embedded SQLite database."""
    default = connections["default"].settings_dict
    if default["ENGINE"].endswith("sqlite3"):
        path = Path(settings.VAR_DIR) / "drills.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    from apps.drills.targets import portal_target

    key = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
    with verify.connect(portal_target().conninfo, autocommit=True) as conn:
        acquired = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
        try:
            yield bool(acquired)
        finally:
            if acquired:
                conn.execute("SELECT pg_advisory_unlock(%s)", [key])


def drill_running() -> bool:
    """Whether some process holds the drill lock now."""
    with drill_lock() as acquired:
        return not acquired


# --- the drill ------------------------------------------------------------------------------


def planned_steps(target: Target, options: DrillOptions) -> list[str]:
    engine = target.engine
    steps = [
        f"check that {target.label} is reachable and that {settings.BACKUP_DIR} has at least "
        f"{settings.DRILL_DISK_FACTOR:g} x the database size free; take the drill lock",
    ]
    if options.kind == DrillKind.MIGRATION_ROLLBACK:
        steps.append(
            f"plan the rollback to {options.rollback_to} and list irreversible migrations "
            "(refuse if any)"
        )
    if options.use_latest_backup:
        steps.append("use the latest stored backup of this target")
    elif engine == "sqlite":
        steps.append("back up with SQLite's online backup API, checksumming every table first")
    else:
        steps.append(
            "pg_dump (custom format) inside an exported snapshot, checksumming every table in "
            "that snapshot"
        )
    steps.append("re-check the backup file's SHA-256")
    if engine == "sqlite":
        steps.append("restore into a shadow file with the backup API")
    else:
        steps.append(
            f"create a shadow database from {settings.DRILL_SHADOW_TEMPLATE or 'template0'} and "
            f"pg_restore into it with {options.jobs or settings.DRILL_RESTORE_JOBS} jobs"
        )
    if options.kind == DrillKind.MIGRATION_ROLLBACK:
        steps += [
            f"migrate the shadow backwards to {options.rollback_to}",
            "run Django's checks and a smoke query per model of that state",
            "migrate forward to head; readiness checks; compare the schema with the restored one",
        ]
    else:
        steps += [
            "compare row counts and checksums of every table, the schema and sequence values",
            "pg_amcheck the shadow" if engine != "sqlite" else "PRAGMA integrity_check the shadow",
            "run the portal's readiness checks (migrations at head, a smoke query per model)"
            if target.is_portal
            else "(readiness checks apply to the portal's own database only)",
        ]
    steps.append("drop the shadow (always, also on failure or cancellation); record RTO and RPO")
    return steps


def execute(target: Target, options: DrillOptions) -> DrillReport:
    """Run one drill and return its report. Never raises for a drill that fails: the failure,
    with its cause, is in the report."""
    report = DrillReport(
        kind=options.kind,
        engine=target.engine,
        target=target.label,
        started_at=timezone.now(),
        dry_run=options.dry_run,
        rto_target_seconds=float(options.rto_target_seconds),
        rpo_target_seconds=float(options.rpo_target_seconds)
        if options.kind == DrillKind.BACKUP_RESTORE
        else None,
    )
    if options.dry_run:
        report.steps = planned_steps(target, options)
        if options.kind == DrillKind.MIGRATION_ROLLBACK and target.is_portal:
            try:
                report.rollback = rollback.plan(options.rollback_to).to_dict()
            except rollback.StateError as exc:
                report.error = str(exc)
        report.finished_at = timezone.now()
        return report
    with drill_lock() as acquired:
        if not acquired:
            report.refused = True
            report.error = "another drill is running; drills never run at once"
            report.finished_at = timezone.now()
            return report
        backend = backend_for(target, options)
        try:
            _run(backend, target, options, report)
        except Refused as exc:
            report.refused = True
            report.error = str(exc)
        except pgtools.Canceled as exc:
            report.canceled = True
            report.error = str(exc)
        except Exception as exc:
            report.error = describe_connection_error(exc)
        except BaseException as exc:  # SIGTERM (run_drill) or Ctrl-C: a cancellation
            report.canceled = True
            report.error = f"interrupted ({type(exc).__name__}); the shadow was dropped"
        finally:
            report.finished_at = timezone.now()
            report.note(f"finished: {report.status}")
    return report


def _progress(options: DrillOptions, report: DrillReport) -> None:
    if options.on_progress:
        options.on_progress(report)


def _run(backend, target: Target, options: DrillOptions, report: DrillReport) -> None:
    rollback_plan = None
    with report.phase("preflight") as phase:
        size = backend.probe()
        free = backups.free_bytes()
        needed = int(size * settings.DRILL_DISK_FACTOR)
        phase.detail = f"database {size:,} bytes; {free:,} bytes free in BACKUP_DIR"
        if free < needed:
            raise Refused(
                f"not enough disk: {free:,} bytes free in {settings.BACKUP_DIR}, the drill needs "
                f"{needed:,} ({settings.DRILL_DISK_FACTOR:g} x the database's {size:,} bytes)"
            )
        for orphan in _drop_orphans(backend):
            report.note(f"dropped the orphaned shadow {orphan} of an interrupted drill")
        if options.kind == DrillKind.MIGRATION_ROLLBACK:
            if not target.is_portal:
                raise Refused("a migration rollback rehearsal needs the portal's own database")
            rollback_plan = rollback.plan(options.rollback_to)
            report.rollback = rollback_plan.to_dict()
            if rollback_plan.irreversible:
                phase.detail = f"{len(rollback_plan.irreversible)} irreversible migration steps"
                report.mismatches += [
                    f"irreversible: {step}" for step in rollback_plan.irreversible
                ]
                report.error = (
                    "the rollback cannot be rehearsed: irreversible migrations in the plan; "
                    "nothing was touched"
                )
                return
            if not rollback_plan.backward:
                report.warnings.append(f"nothing to unapply for {options.rollback_to}")
    _progress(options, report)

    manifest = _backup_phase(backend, target, options, report)
    _progress(options, report)

    # Named before it exists: an interruption at any point after CREATE DATABASE (even before
    # create_shadow returns) still finds the name here and drops it.
    shadow = backend.shadow_name(options.label)
    try:
        with report.phase("restore") as phase:
            restore_began = timezone.now()
            report.shadow_database = shadow
            backend.create_shadow(shadow)
            report.note(f"created the shadow {shadow}")
            _progress(options, report)
            backend.restore(Path(report.backup.path), shadow)
            phase.detail = f"into {shadow}"
        report.rpo_seconds = round((restore_began - report.backup.snapshot_at).total_seconds(), 3)
        _progress(options, report)
        if options.after_restore:
            options.after_restore(backend, shadow)
        if options.kind == DrillKind.MIGRATION_ROLLBACK:
            _rehearse_rollback(backend, shadow, options, rollback_plan, report)
        else:
            _verify(backend, target, shadow, manifest, report, options)
    finally:
        with report.phase("cleanup") as phase:
            backend.drop_shadow(shadow)
            phase.detail = f"dropped {shadow}"
            report.note(f"dropped the shadow {shadow}")
    _progress(options, report)


def _backup_phase(backend, target, options, report) -> SourceManifest:
    if options.use_latest_backup:
        with report.phase("backup") as phase:
            stored = backups.latest_backup(target.key)
            if stored is None:
                raise FileNotFoundError(f"no stored backup of {target.label} to restore")
            manifest = SourceManifest.from_json(stored.manifest)
            phase.detail = f"latest stored backup {Path(stored.path).name}"
        fresh = False
    else:
        if options.kind == DrillKind.BACKUP_RESTORE:
            _check_stored_backup_age(target, options, report)
        with report.phase("backup") as phase:
            taken = backups.take_backup(
                backend, target, tenant_id=options.tenant_id, drill_id=options.drill_id
            )
            stored, manifest = taken.backup, taken.manifest
            phase.detail = f"{stored.size_bytes:,} bytes, {len(manifest.tables)} tables"
        fresh = True
    report.backup = BackupInfo(
        path=stored.path,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        snapshot_at=stored.snapshot_at,
        fresh=fresh,
        backup_id=stored.pk,
    )
    with report.phase("verify_backup") as phase:
        problem = backups.check_file(stored)
        if problem:
            report.mismatches.append(problem)
            raise RuntimeError(problem)
        phase.detail = "SHA-256 matches the recorded one"
    return manifest


def _check_stored_backup_age(target, options, report: DrillReport) -> None:
    """A fresh backup says nothing about the daily ones: if disaster struck now, the data since
    the newest stored backup would be lost. Say so when that is past the RPO target."""
    stored = backups.latest_backup(target.key)
    if stored is None:
        report.warnings.append(
            f"no stored backup of {target.label}: the daily backup has not run (RPO unbounded)"
        )
        return
    age = (report.started_at - stored.snapshot_at).total_seconds()
    if age > options.rpo_target_seconds:
        report.warnings.append(
            f"the newest stored backup was {age / 3600:.1f} h old when the drill started, past "
            f"the {options.rpo_target_seconds / 3600:.1f} h RPO target: is the daily backup "
            "running?"
        )


def _verify(backend, target, shadow, manifest: SourceManifest, report, options) -> None:
    with report.phase("checksums") as phase:
        tables, sequences, schema = backend.shadow_manifest(shadow)
        report.tables = [
            TableCheck(
                table=name,
                source_rows=expected.rows,
                source_checksum=expected.checksum,
                shadow_rows=tables[name].rows if name in tables else None,
                shadow_checksum=tables[name].checksum if name in tables else None,
            )
            for name, expected in manifest.tables.items()
        ]
        problems = verify.compare_tables(manifest.tables, tables)
        total = sum(t.rows for t in manifest.tables.values())
        phase.detail = f"{len(tables)} tables, {total:,} rows"
        if problems:
            phase.status = "failed"
            report.mismatches += problems
    with report.phase("schema") as phase:
        problems = verify.compare_schema(manifest.schema, schema)
        problems += verify.compare_sequences(manifest.sequences, sequences)
        phase.detail = f"{len(manifest.schema)} objects, {len(manifest.sequences)} sequences"
        if problems:
            phase.status = "failed"
            report.mismatches += problems
    with report.phase("integrity") as phase:
        ran, problems, detail = backend.integrity(shadow)
        phase.detail = detail
        if not ran:
            phase.status = "skipped"
            report.warnings.append(f"integrity check not run: {detail}")
        elif problems:
            phase.status = "failed"
            report.mismatches += problems
    with report.phase("readiness") as phase:
        if not target.is_portal:
            phase.status = "skipped"
            phase.detail = "not the portal's own database"
        else:
            result = shadow_command(backend, shadow, "readiness", options)
            detail, problems = result["detail"], result["problems"]
            phase.detail = detail
            if problems:
                phase.status = "failed"
                report.mismatches += problems
    report.rto_seconds = round(
        report.seconds_of("restore", "checksums", "schema", "integrity", "readiness"), 3
    )


def shadow_command(backend, shadow: str, step: str, options, argument=None) -> dict:
    """Run `manage.py drill_shadow STEP` in a child process whose database is the shadow."""
    url, env = backend.database_url(shadow)
    args = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "drill_shadow", step]
    if argument is not None:
        args.append(json.dumps(argument))
    out = pgtools.run(
        args,
        env={**env, "DATABASE_URL": url, "DATABASE_MIGRATE_URL": url, "DATABASE_REPLICA_URL": ""},
        should_cancel=options.should_cancel,
    )
    return json.loads(out.strip().splitlines()[-1])


def _rehearse_rollback(backend, shadow, options, plan, report: DrillReport) -> None:
    before = backend.schema_of(shadow)
    with report.phase("rollback") as phase:
        steps = shadow_command(backend, shadow, "migrate", options, plan.targets)["steps"]
        report.rollback["backward_applied"] = steps
        phase.detail = f"{len(steps)} migrations unapplied"
    with report.phase("rolled_back_checks") as phase:
        result = shadow_command(backend, shadow, "rolled-back-checks", options, plan.backward)
        phase.detail = result["detail"]
        if result["problems"]:
            phase.status = "failed"
            report.mismatches += result["problems"]
    report.rto_seconds = round(report.seconds_of("rollback", "rolled_back_checks"), 3)
    with report.phase("forward") as phase:
        steps = shadow_command(backend, shadow, "migrate", options, [])["steps"]
        report.rollback["forward"] = steps
        phase.detail = f"{len(steps)} migrations applied"
    with report.phase("readiness") as phase:
        result = shadow_command(backend, shadow, "readiness", options)
        phase.detail = result["detail"]
        if result["problems"]:
            phase.status = "failed"
            report.mismatches += result["problems"]
    with report.phase("schema") as phase:
        after = backend.schema_of(shadow)
        problems = [f"after the round trip: {p}" for p in verify.compare_schema(before, after)]
        phase.detail = f"{len(before)} schema objects compared before and after"
        if problems:
            phase.status = "failed"
            report.mismatches += problems


def cleanup_orphans(target: Target) -> list[str]:
    """Drop shadows left by a drill whose process was killed, if no drill is running."""
    with drill_lock() as acquired:
        if not acquired:
            return []
        return _drop_orphans(backend_for(target, DrillOptions()))


def _drop_orphans(backend) -> list[str]:
    """Drop the shadows of this target that no drill owns (the caller holds the lock)."""
    orphans = backend.orphan_shadows()
    for orphan in orphans:
        backend.drop_shadow(orphan)
    return orphans
