"""The SQLite half of a drill, for the embedded default: the same report shape through SQLite's
online backup API, `PRAGMA integrity_check` and the same per-table checksums.

The backup is read from a connection holding one read transaction, and the source's checksums
are computed in that transaction first, so they describe exactly what the backup file holds. A
row's hash is BLAKE2b-64 of its Python repr (SQLite has no row-to-text hash), summed modulo
2**64 like the PostgreSQL side.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from apps.drills import pgtools, verify
from apps.drills.targets import Target
from apps.drills.verify import SourceManifest

MASK64 = (1 << 64) - 1


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
    return sqlite3.connect(str(path), isolation_level=None, timeout=30)


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]


def _table_sum(conn: sqlite3.Connection, table: str) -> verify.TableSum:
    quoted = '"' + table.replace('"', '""') + '"'
    count = 0
    total = 0
    for row in conn.execute(f"SELECT * FROM {quoted}"):  # noqa: S608 - quoted identifier
        count += 1
        digest = hashlib.blake2b(repr(row).encode(), digest_size=8).digest()
        total += int.from_bytes(digest, "big")
    return verify.TableSum(rows=count, checksum=f"{total & MASK64:016x}")


def checksums(conn: sqlite3.Connection) -> dict[str, verify.TableSum]:
    return {f"main.{table}": _table_sum(conn, table) for table in _tables(conn)}


def schema_objects(conn: sqlite3.Connection) -> set[str]:
    return {
        f"{kind} {name}: {' '.join((ddl or '').split())}"
        for kind, name, ddl in conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        )
    }


def sequence_values(conn: sqlite3.Connection) -> dict[str, int | None]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
    ).fetchone()
    if not exists:
        return {}
    return {f"main.{name}": int(seq) for name, seq in conn.execute("SELECT * FROM sqlite_sequence")}


class SQLiteBackend:
    engine = "sqlite"

    def __init__(self, target: Target, *, jobs: int, should_cancel: Callable[[], bool]):
        self.target = target
        self.path = Path(target.sqlite_path)
        self.should_cancel = should_cancel

    def probe(self) -> int:
        if not self.path.is_file():
            raise FileNotFoundError(f"the SQLite database {self.path} does not exist")
        with _connect(self.path, readonly=True) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return self.path.stat().st_size

    def backup(self, dest: Path) -> SourceManifest:
        source = _connect(self.path, readonly=True)
        try:
            source.execute("BEGIN")
            tables = checksums(source)  # also opens the read transaction the backup reads
            sequences = sequence_values(source)
            schema = schema_objects(source)
            taken_at = datetime.now(UTC)
            target = sqlite3.connect(str(dest))
            try:
                source.backup(target, pages=4096, progress=self._progress)
            finally:
                target.close()
            source.execute("COMMIT")
        finally:
            source.close()
        return SourceManifest(
            snapshot_at=taken_at, tables=tables, sequences=sequences, schema=schema
        )

    def _progress(self, _status: int, _remaining: int, _total: int) -> None:
        if self.should_cancel():
            raise pgtools.Canceled("canceled during the SQLite backup")

    def _shadow_path(self, shadow: str) -> Path:
        return Path(settings.BACKUP_DIR) / f"{shadow}.sqlite3"

    def shadow_name(self, run_label: str) -> str:
        return f"drill_shadow_{run_label}_{secrets.token_hex(3)}"

    def create_shadow(self, name: str) -> None:
        """The online backup API creates the file as it restores."""

    def restore(self, path: Path, shadow: str) -> None:
        source = _connect(path, readonly=True)
        target = sqlite3.connect(str(self._shadow_path(shadow)))
        try:
            source.backup(target, pages=4096, progress=self._progress)
        finally:
            target.close()
            source.close()

    def shadow_conninfo(self, shadow: str) -> str:
        return str(self._shadow_path(shadow))

    def shadow_manifest(self, shadow: str) -> tuple[dict, dict, set]:
        with _connect(self._shadow_path(shadow), readonly=True) as conn:
            return checksums(conn), sequence_values(conn), schema_objects(conn)

    def schema_of(self, shadow: str) -> set[str]:
        with _connect(self._shadow_path(shadow), readonly=True) as conn:
            return schema_objects(conn)

    def integrity(self, shadow: str) -> tuple[bool, list[str], str]:
        with _connect(self._shadow_path(shadow), readonly=True) as conn:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
        problems = [] if result == ["ok"] else [f"integrity_check: {line}" for line in result]
        problems += [f"foreign_key_check: {row}" for row in foreign[:20]]
        return True, problems, "PRAGMA integrity_check and foreign_key_check"

    def database_url(self, shadow: str) -> tuple[str, dict[str, str]]:
        return f"sqlite:///{self._shadow_path(shadow).resolve()}", {}

    def drop_shadow(self, shadow: str) -> None:
        path = self._shadow_path(shadow)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def orphan_shadows(self) -> list[str]:
        return [p.stem for p in Path(settings.BACKUP_DIR).glob("drill_shadow_*.sqlite3")]
