"""Proof that a restored PostgreSQL copy is the source: per-table row counts and content
checksums, the schema, and sequence values.

A table's checksum is the sum, modulo 2**64, of a 64-bit hash (`hashtextextended`) of each row's
text form. A sum does not depend on row order, so neither side needs a sort, and the work is one
sequential scan per table, spread over a few connections. Both sides use the same session
settings (UTC, ISO dates, shortest-exact floats, hex bytea) so equal rows print equally. On the
source the connections import one exported snapshot, the one pg_dump reads, so the figures
describe exactly what the backup holds. `row_security` is off: a role that row-level security
would filter gets an error, never a silently partial count.
"""

from __future__ import annotations

import queue
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import sql

SESSION_SETTINGS = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
    "SET row_security = off",
    "SET statement_timeout = 0",
    "SET jit = off",
)
_SCHEMA_FILTER = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'amcheck') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
)


def _q(query: str) -> str:
    """A catalog query with the user-schema filter (a constant) put in place of FILTER."""
    return query.replace("FILTER", _SCHEMA_FILTER)


MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class TableSum:
    rows: int
    checksum: str


@dataclass
class SourceManifest:
    """What the backup holds, read in the backup's own snapshot."""

    snapshot_at: datetime
    tables: dict[str, TableSum] = field(default_factory=dict)
    sequences: dict[str, int | None] = field(default_factory=dict)
    schema: set[str] = field(default_factory=set)

    def to_json(self) -> dict:
        return {
            "snapshot_at": self.snapshot_at.isoformat(),
            "tables": {name: [t.rows, t.checksum] for name, t in self.tables.items()},
            "sequences": self.sequences,
            "schema": sorted(self.schema),
        }

    @classmethod
    def from_json(cls, data: dict) -> SourceManifest:
        return cls(
            snapshot_at=datetime.fromisoformat(data["snapshot_at"]),
            tables={
                name: TableSum(rows=rows, checksum=checksum)
                for name, (rows, checksum) in data.get("tables", {}).items()
            },
            sequences=data.get("sequences", {}),
            schema=set(data.get("schema", [])),
        )


def connect(conninfo: str, *, autocommit: bool = False) -> psycopg.Connection:
    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    for statement in SESSION_SETTINGS:
        conn.execute(statement)
    conn.autocommit = autocommit
    return conn


def user_tables(conn: psycopg.Connection) -> list[tuple[str, str, int]]:
    """(schema, table, estimated pages) of every ordinary table, largest first."""
    rows = conn.execute(
        _q(
            "SELECT n.nspname, c.relname, c.relpages FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND FILTER ORDER BY c.relpages DESC, 1, 2"
        )
    ).fetchall()
    return [(schema, table, pages) for schema, table, pages in rows]


def table_sum(conn: psycopg.Connection, schema: str, table: str) -> TableSum:
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM ONLY {} AS t"
    ).format(sql.Identifier(schema, table))
    count, total = conn.execute(query).fetchone()
    return TableSum(rows=int(count), checksum=f"{int(total) & MASK64:016x}")


def checksums(
    conninfo: str,
    *,
    snapshot: str | None = None,
    jobs: int = 2,
    tables: list[tuple[str, str, int]] | None = None,
) -> dict[str, TableSum]:
    """Row counts and checksums of every user table, keyed "schema.table", over `jobs`
    connections (each importing `snapshot` when given)."""
    if tables is None:
        with connect(conninfo, autocommit=True) as conn:
            tables = user_tables(conn)
    work: queue.Queue = queue.Queue()
    for entry in tables:
        work.put(entry)
    results: dict[str, TableSum] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            with connect(conninfo) as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if snapshot:
                    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(snapshot))
                while not errors:
                    try:
                        schema, table, _pages = work.get_nowait()
                    except queue.Empty:
                        break
                    result = table_sum(conn, schema, table)
                    with lock:
                        results[f"{schema}.{table}"] = result
                conn.execute("COMMIT")
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(jobs, len(tables))))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return dict(sorted(results.items()))


def schema_objects(conn: psycopg.Connection) -> set[str]:
    """Tables, columns, indexes, constraints, triggers and row-level security policies, each as
    one line of text, comparable across databases."""
    queries = [
        "SELECT 'table ' || n.nspname || '.' || c.relname || ' (' || c.relkind::text || ', rls '"
        " || c.relrowsecurity::text || ')' FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND FILTER",
        "SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' '"
        " || format_type(a.atttypid, a.atttypmod)"
        " || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END"
        " || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm')"
        " AND FILTER",
        "SELECT 'index ' || n.nspname || '.' || c.relname || ': ' || pg_get_indexdef(i.indexrelid)"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE FILTER",
        "SELECT 'constraint ' || n.nspname || '.' || c.relname || '.' || con.conname || ': '"
        " || pg_get_constraintdef(con.oid) FROM pg_constraint con"
        " JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE FILTER",
        "SELECT 'trigger ' || n.nspname || '.' || c.relname || ': ' || pg_get_triggerdef(t.oid)"
        " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND FILTER",
        "SELECT 'policy ' || schemaname || '.' || tablename || '.' || policyname || ' '"
        " || cmd || ' using ' || coalesce(qual, '') || ' check ' || coalesce(with_check, '')"
        " FROM pg_policies WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    ]
    objects: set[str] = set()
    for query in queries:
        objects.update(row[0] for row in conn.execute(_q(query)))
    return objects


# PostgreSQL re-renders an expression it parsed again from a dump with other casts and
# parentheses (`= ANY ((ARRAY['a'::varchar])::text[])` comes back as
# `= ANY (ARRAY[('a'::varchar)::text])`), so expressions are compared without either.
_CAST = re.compile(
    r"::(?:\"[^\"]+\"|[a-z_][a-z0-9_]*(?: (?:varying|precision|with time zone|without time zone))?)"
    r"(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])*"
)
_PUNCTUATION = re.compile(r"\s*([\[\],])\s*")


def normalise(item: str) -> str:
    text = " ".join(_CAST.sub("", item).replace("(", " ").replace(")", " ").split())
    return _PUNCTUATION.sub(r"\1", text)


def compare_schema(source: set[str], shadow: set[str], limit: int = 50) -> list[str]:
    """Objects on one side only, expressions compared modulo casts and parentheses."""
    source_norm = {normalise(item): item for item in source}
    shadow_norm = {normalise(item): item for item in shadow}
    source = {source_norm[key] for key in source_norm.keys() - shadow_norm.keys()}
    shadow = {shadow_norm[key] for key in shadow_norm.keys() - source_norm.keys()}
    problems = [f"missing in the shadow: {item}" for item in sorted(source - shadow)]
    problems += [f"only in the shadow: {item}" for item in sorted(shadow - source)]
    if len(problems) > limit:
        problems = [*problems[:limit], f"... and {len(problems) - limit} more schema differences"]
    return problems


def sequence_values(conn: psycopg.Connection) -> dict[str, int | None]:
    rows = conn.execute(
        "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    return {name: value for name, value in rows}


def compare_sequences(source: dict[str, int | None], shadow: dict[str, int | None]) -> list[str]:
    """A restored sequence must be at least where the source stood when its snapshot was taken
    (sequences are not transactional, so pg_dump may read a later value, never an earlier one)."""
    problems = []
    for name, value in sorted(source.items()):
        if name not in shadow:
            problems.append(f"sequence {name} missing in the shadow")
        elif value is not None and (shadow[name] is None or shadow[name] < value):
            problems.append(
                f"sequence {name} restored at {shadow[name]}, the source was at {value}: new "
                "rows would reuse ids"
            )
    return problems


def compare_tables(source: dict[str, TableSum], shadow: dict[str, TableSum]) -> list[str]:
    problems = []
    for name, expected in source.items():
        got = shadow.get(name)
        if got is None:
            problems.append(f"table {name} missing in the shadow")
        elif got.rows != expected.rows:
            problems.append(
                f"table {name}: {got.rows} rows restored, {expected.rows} in the backup"
            )
        elif got.checksum != expected.checksum:
            problems.append(
                f"table {name}: content checksum {got.checksum} differs from the source's "
                f"{expected.checksum} ({got.rows} rows)"
            )
    for name in sorted(set(shadow) - set(source)):
        problems.append(f"table {name} only in the shadow")
    return problems
