"""The PostgreSQL half of a drill: pg_dump inside an exported snapshot (with the source's
checksums read in that same snapshot), a uniquely named shadow database, pg_restore with
parallel jobs, the shadow's checksums, schema and sequences, pg_amcheck, and the drop."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import psycopg
from django.conf import settings
from psycopg import conninfo as pg_conninfo
from psycopg import sql

from apps.drills import pgtools, verify
from apps.drills.targets import Target
from apps.drills.verify import SourceManifest

SHADOW_PREFIX = "drill_shadow_"


class PostgresBackend:
    engine = "postgresql"

    def __init__(self, target: Target, *, jobs: int, should_cancel: Callable[[], bool]):
        self.target = target
        self.jobs = max(1, jobs)
        self.should_cancel = should_cancel
        self._source_oid: int | None = None

    # --- source -------------------------------------------------------------------------------

    def probe(self) -> int:
        """Connect (naming the error if the target is unreachable) and return its size."""
        with verify.connect(self.target.conninfo, autocommit=True) as conn:
            size, oid = conn.execute(
                "SELECT pg_database_size(current_database()), "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
        self._source_oid = int(oid)
        return int(size)

    def backup(self, dest: Path) -> SourceManifest:
        """pg_dump (custom format) of one exported snapshot; the source's counts, checksums,
        sequences and schema are read in that snapshot while pg_dump runs."""
        with verify.connect(self.target.conninfo) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot, taken_at = conn.execute(
                "SELECT pg_export_snapshot(), statement_timestamp()"
            ).fetchone()
            tables = verify.user_tables(conn)
            sequences = verify.sequence_values(conn)
            schema = verify.schema_objects(conn)
            conninfo, env = self.target.subprocess_args()
            args = [
                pgtools.binary("pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                "--no-sync",
                f"--file={dest}",
                f"--dbname={conninfo}",
            ]
            dump_error: list[BaseException] = []

            def dump() -> None:
                try:
                    pgtools.run(args, env=env, should_cancel=self.should_cancel)
                except BaseException as exc:  # re-raised below, in the drill's thread
                    dump_error.append(exc)

            dumper = threading.Thread(target=dump, daemon=True)
            dumper.start()
            try:
                sums = verify.checksums(
                    self.target.conninfo, snapshot=snapshot, jobs=self.jobs, tables=tables
                )
            finally:
                dumper.join()
            conn.execute("COMMIT")
        if dump_error:
            raise dump_error[0]
        return SourceManifest(snapshot_at=taken_at, tables=sums, sequences=sequences, schema=schema)

    # --- shadow -------------------------------------------------------------------------------

    def _shadow_prefix(self) -> str:
        # The source's oid keeps two portals that share a server from dropping each other's
        # shadows when they clean up orphans.
        if self._source_oid is None:
            self.probe()
        return f"{SHADOW_PREFIX}{self._source_oid}_"

    def shadow_name(self, run_label: str) -> str:
        return f"{self._shadow_prefix()}{run_label}_{secrets.token_hex(3)}"[:63]

    def create_shadow(self, name: str) -> None:
        template = settings.DRILL_SHADOW_TEMPLATE or "template0"
        with verify.connect(self.target.conninfo, autocommit=True) as conn:
            usable = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", [template]
            ).fetchone()
            if not usable:
                template = "template0"
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )

    def restore(self, path: Path, shadow: str) -> None:
        conninfo, env = self.target.subprocess_args(dbname=shadow)
        # A throwaway copy needs no durable commits: synchronous_commit off makes the many small
        # DDL transactions of a restore much faster (the same tuning suits a real DR restore).
        env = {**env, "PGOPTIONS": "-c synchronous_commit=off"}
        pgtools.run(
            [
                pgtools.binary("pg_restore"),
                "--no-owner",
                "--no-acl",
                "--exit-on-error",
                f"--jobs={self.jobs}",
                f"--dbname={conninfo}",
                str(path),
            ],
            env=env,
            should_cancel=self.should_cancel,
        )

    def shadow_conninfo(self, shadow: str) -> str:
        return self.target.with_dbname(shadow)

    def shadow_manifest(self, shadow: str) -> tuple[dict, dict, set]:
        conninfo = self.shadow_conninfo(shadow)
        sums = verify.checksums(conninfo, jobs=self.jobs)
        with verify.connect(conninfo, autocommit=True) as conn:
            return sums, verify.sequence_values(conn), verify.schema_objects(conn)

    def schema_of(self, shadow: str) -> set[str]:
        with verify.connect(self.shadow_conninfo(shadow), autocommit=True) as conn:
            return verify.schema_objects(conn)

    def integrity(self, shadow: str) -> tuple[bool, list[str], str]:
        """pg_amcheck over every table and B-tree index of the shadow: (ran, problems, detail)."""
        with verify.connect(self.shadow_conninfo(shadow), autocommit=True) as conn:
            installed = conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'amcheck'"
            ).fetchone()
        if not installed:
            return (
                False,
                [],
                "amcheck is not installed in the shadow template (DRILL_SHADOW_TEMPLATE); "
                "see docs/operations/dr-runbook.md",
            )
        conninfo, env = self.target.subprocess_args(dbname=shadow)
        try:
            out = pgtools.run(
                [pgtools.binary("pg_amcheck"), f"--jobs={self.jobs}", conninfo],
                env=env,
                should_cancel=self.should_cancel,
            )
        except pgtools.CommandFailed as exc:
            return True, [f"pg_amcheck reported corruption: {exc}"], "corruption found"
        problems = [line for line in out.splitlines() if line.strip()]
        return True, problems, "heap and B-tree indexes checked"

    def database_url(self, shadow: str) -> tuple[str, dict[str, str]]:
        """DATABASE_URL for a child `manage.py` on the shadow; the password goes in PGPASSWORD."""
        params = pg_conninfo.conninfo_to_dict(self.shadow_conninfo(shadow))
        env = {"PGPASSWORD": str(params["password"])} if params.get("password") else {}
        user = quote(str(params.get("user", "")), safe="")
        host = params.get("host") or "localhost"
        port = params.get("port") or 5432
        return f"postgresql://{user}@{host}:{port}/{quote(shadow)}", env

    def drop_shadow(self, shadow: str) -> None:
        with verify.connect(self.target.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(shadow))
            )

    def orphan_shadows(self) -> list[str]:
        prefix = self._shadow_prefix()
        with verify.connect(self.target.conninfo, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix]
            ).fetchall()
        return [row[0] for row in rows]


def describe_connection_error(exc: BaseException) -> str:
    if isinstance(exc, psycopg.OperationalError):
        return "cannot connect to the target: " + " ".join(str(exc).split())
    message = " ".join(str(exc).split())
    if "row-level security" in message:
        message += (
            " - the drill connected as a role that row-level security applies to; set "
            "DATABASE_MIGRATE_URL to the table owner (opsportal_owner)"
        )
    return message
