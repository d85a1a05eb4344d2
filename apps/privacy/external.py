"""External PostgreSQL databases in the data map.

A privacy officer declares a database (DSN, stored encrypted) and, per table, the column that
holds the subject's email or external id, the primary key, and a FieldSpec per column. The
declaration is checked against the live table when it is saved: the table and every column must
exist, and each strategy must suit the column's type (a keyed hash needs text, a date truncation
a date or timestamp), so an erasure never fails halfway on a type error.

Reads stream through a server-side cursor. An erasure is one transaction per table: rows are
deleted in one statement, or their new values are computed here (keyed hashes need the tenant's
key, which never leaves the portal), COPYed into a temporary table and applied with one
UPDATE ... FROM. Emails match case-insensitively (`lower(column) = email`); an index on
`lower(column)` keeps that fast on big tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.core.exceptions import ValidationError
from psycopg import sql

from apps.drills.targets import redact, validate_dsn
from apps.privacy import identity as ident
from apps.privacy.identity import Identity
from apps.privacy.masking import FieldSpec, deletes_row, masked, spec, validate_specs
from apps.privacy.models import ExternalDatabase, ExternalTable, Strategy, SubjectKind
from apps.privacy.sources import Outcome, Preview, Source, SourceError, check_changes
from opsportal import crypto

FETCH = 5000
STATEMENT_TIMEOUT_MS = 600_000
TEXT_TYPES = {"text", "character varying", "character", "citext", "USER-DEFINED"}
DATE_TYPES = {"date", "timestamp with time zone", "timestamp without time zone"}
CONNECT_TIMEOUT = 5


def external_sources(tenant) -> list[ExternalTableSource]:
    tables = (
        ExternalTable.objects.for_tenant(tenant)
        .filter(enabled=True, database__enabled=True)
        .select_related("database")
    )
    return [ExternalTableSource(table) for table in tables]


def _split(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return schema or "public", name


# What a declared DSN may say. Everything else (passfile, service, sslkey, options, ...) could make
# the worker read its own files or change how statements run.
ALLOWED_DSN_KEYS = {
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
}


def check_external_dsn(dsn: str) -> str:
    """The normalised DSN, or ValidationError (422): malformed, with keys other than the
    connection's own, a local socket, unreachable, a role that bypasses row-level security, or
    the portal's own database (whose tables hold every tenant)."""
    from psycopg import conninfo as pg_conninfo

    normalised = validate_dsn(dsn)
    params = pg_conninfo.conninfo_to_dict(normalised)
    refused = sorted(set(params) - ALLOWED_DSN_KEYS)
    if refused:
        raise ValidationError({"dsn": f"These DSN keys are not accepted: {', '.join(refused)}."})
    if str(params.get("host", "")).startswith("/"):
        raise ValidationError({"dsn": "Connect over TCP (a host name or address), not a socket."})
    try:
        with _open(normalised, autocommit=True, read_only=True) as conn:
            found = conn.execute(
                "SELECT current_database(), pg_postmaster_start_time(), inet_server_port(), "
                "(SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise ValidationError(
            {"dsn": f"cannot connect to {redact(normalised)}: {_first_line(exc)}"}
        ) from None
    if found[3]:
        raise ValidationError(
            {"dsn": "Use a role without SUPERUSER or BYPASSRLS: only what the tables need."}
        )
    if found[:3] == _portal_identity():
        raise ValidationError(
            {"dsn": "This is the portal's own database; its data is in the data map already."}
        )
    return normalised


def _portal_identity() -> tuple | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), pg_postmaster_start_time(), inet_server_port()")
        return tuple(cursor.fetchone())


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _open(conninfo: str, *, autocommit: bool, read_only: bool):
    """Statements are bounded; reads run read-only (also in autocommit); the worker's own
    password file is never consulted."""
    options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    return psycopg.connect(
        conninfo,
        connect_timeout=CONNECT_TIMEOUT,
        autocommit=autocommit,
        application_name="opsportal-privacy",
        options=options,
        # A path that never exists: libpq then reads no password file (and warns about none).
        passfile="/nonexistent/opsportal-reads-no-pgpass",
    )


@contextmanager
def connect(database: ExternalDatabase, *, autocommit: bool = False, read_only: bool = False):
    """A connection to a declared database: reads (export, dry run) are read-only transactions."""
    try:
        conn = _open(
            crypto.decrypt(database.dsn_ciphertext), autocommit=autocommit, read_only=read_only
        )
    except psycopg.OperationalError as exc:
        raise SourceError(f"cannot connect to {database.dsn_hint}: {_first_line(exc)}") from None
    try:
        yield conn
    finally:
        conn.close()


def column_types(conn, table: str) -> dict[str, tuple[str, bool]]:
    """column -> (data type, nullable) of a live table; empty when the table does not exist."""
    schema, name = _split(table)
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        [schema, name],
    ).fetchall()
    return {column: (kind, nullable) for column, kind, nullable in rows}


def check_table(table: ExternalTable) -> None:
    """ValidationError naming each problem, checked against the live table."""
    errors = validate_specs(table.columns)
    if errors:
        raise ValidationError(errors)
    try:
        with connect(table.database, autocommit=True, read_only=True) as conn:
            types = column_types(conn, table.table)
            unique_key = _is_unique(conn, table.table, table.key_column)
    except SourceError as exc:
        raise ValidationError({"database": str(exc)}) from None
    if not types:
        raise ValidationError({"table": f"No table {table.table} in {table.database.dsn_hint}."})
    for field_name in ("key_column", "subject_column"):
        column = getattr(table, field_name)
        if column not in types:
            errors[field_name] = f"No column {column} in {table.table}."
    if "key_column" not in errors and not unique_key:
        errors["key_column"] = (
            f"{table.key_column} is not unique in {table.table} (no primary key or unique index "
            "on it alone): an erasure would rewrite other subjects' rows."
        )
    subject = table.columns.get(table.subject_column)
    if subject is not None and not (spec(subject).changes or spec(subject).legal_hold):
        errors[f"columns.{table.subject_column}"] = (
            "The subject column must be masked (or deleted) by an erasure, or on legal hold."
        )
    elif subject is None:
        errors["subject_column"] = (
            f"Declare {table.subject_column} in columns, with how an erasure treats it."
        )
    for column, raw in table.columns.items():
        where = f"columns.{column}"
        if column not in types:
            errors[where] = f"No column {column} in {table.table}."
            continue
        kind = types[column][0]
        strategy = spec(raw).strategy
        if strategy in (Strategy.KEYED_HASH, Strategy.RANDOM_STRING) and kind not in TEXT_TYPES:
            errors[where] = f"{strategy} needs a text column; {column} is {kind}."
        elif strategy == Strategy.TRUNCATE_DATE and kind not in DATE_TYPES:
            errors[where] = f"truncate_date needs a date or timestamp column; {column} is {kind}."
    if errors:
        raise ValidationError(errors)


def _is_unique(conn, table: str, column: str) -> bool:
    """Whether a primary key or unique index covers exactly this one column."""
    schema, name = _split(table)
    return bool(
        conn.execute(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s "
            "AND i.indisunique AND i.indnatts = 1 AND i.indpred IS NULL",
            [schema, name, column],
        ).fetchone()
    )


class ExternalTableSource(Source):
    kind = "postgresql"

    def __init__(self, table: ExternalTable):
        self.table = table
        self.name = table.source_name

    def field_specs(self) -> dict[str, FieldSpec]:
        return {column: spec(raw) for column, raw in self.table.columns.items()}

    # --- SQL pieces -----------------------------------------------------------------------

    def _table(self) -> sql.Composable:
        schema, name = _split(self.table.table)
        return sql.Identifier(schema, name)

    def _match(self, who: Identity) -> tuple[sql.Composable, list] | None:
        value = who.value(self.table.subject_kind)
        if not value:
            return None
        column = sql.Identifier(self.table.subject_column)
        if self.table.subject_kind == SubjectKind.EMAIL:
            return sql.SQL("lower({}) = %s").format(column), [value]
        return sql.SQL("{} = %s").format(column), [value]

    @staticmethod
    def _columns(names) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(name) for name in names)

    # --- the five questions ---------------------------------------------------------------

    def export(self, tenant, who: Identity, context) -> Iterator[dict]:
        match = self._match(who)
        if match is None:
            return
        where, params = match
        fields = self.exported_fields()
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
            self._columns(fields), self._table(), where, sql.Identifier(self.table.key_column)
        )
        export = connect(self.table.database, read_only=True)
        with export as conn, conn.cursor(name="privacy_export") as cursor:
            cursor.itersize = FETCH
            cursor.execute(query, params)
            for row in cursor:
                yield dict(zip(fields, row, strict=True))

    def preview(self, tenant, who: Identity, context) -> Preview:
        specs = self.field_specs()
        preview = Preview(source=self.name, kind=self.kind, deletes_rows=deletes_row(specs))
        match = self._match(who)
        changing = [name for name, s in specs.items() if s.changes]
        if match is not None:
            where, params = match
            counts = sql.SQL(", ").join(
                [sql.SQL("count(*)")]
                + [sql.SQL("count({})").format(sql.Identifier(n)) for n in changing]
            )
            with connect(self.table.database, autocommit=True, read_only=True) as conn:
                row = conn.execute(
                    sql.SQL("SELECT {} FROM {} WHERE {}").format(counts, self._table(), where),
                    params,
                ).fetchone()
            preview.rows = row[0]
            values = dict(zip(changing, row[1:], strict=True))
        else:
            values = dict.fromkeys(changing, 0)
        for name, s in specs.items():
            entry = {"category": s.category, "strategy": s.strategy, "values": values.get(name, 0)}
            if s.legal_hold:
                entry["legal_hold"] = s.legal_hold
            preview.fields[name] = entry
        return preview

    def erase(self, tenant, who: Identity, context) -> Outcome:
        match = self._match(who)
        if match is None:
            return Outcome(source=self.name, status="done", strategies=self.strategies())
        return self._erase(*match, context)

    def _erase(self, where: sql.Composable, params: list, context) -> Outcome:
        specs = self.field_specs()
        outcome = Outcome(
            source=self.name, status="done", strategies=self.strategies(), retained=self.retained()
        )
        changing = {name: s for name, s in specs.items() if s.changes}
        with connect(self.table.database) as conn:
            if deletes_row(specs):
                cursor = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {}").format(self._table(), where), params
                )
                outcome.rows, outcome.deleted = cursor.rowcount, True
                conn.commit()
                return outcome
            if not changing:
                outcome.status = "retained" if outcome.retained else "done"
                return outcome
            outcome.rows = self._rewrite(conn, where, params, changing, context)
            conn.commit()
        return outcome

    def _rewrite(self, conn, where, params, changing: dict[str, FieldSpec], context) -> int:
        """New values computed here, COPYed into a temporary table, applied in one UPDATE."""
        key = self.table.key_column
        names = list(changing)
        types = column_types(conn, self.table.table)
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE privacy_rewrite ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
            ).format(self._columns([key, *names]), self._table())
        )
        select = sql.SQL("SELECT {} FROM {} WHERE {} FOR UPDATE").format(
            self._columns([key, *names]), self._table(), where
        )
        copy = sql.SQL("COPY privacy_rewrite ({}) FROM STDIN").format(self._columns([key, *names]))
        rows = 0
        with conn.cursor(name="privacy_rewrite_read") as reader:
            reader.execute(select, params)
            while batch := reader.fetchmany(FETCH):
                with conn.cursor().copy(copy) as writer:
                    for row in batch:
                        values = [
                            masked(changing[n], v, key=context.key, nullable=types[n][1])
                            for n, v in zip(names, row[1:], strict=True)
                        ]
                        writer.write_row([row[0], *values])
                rows += len(batch)
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = r.{}").format(sql.Identifier(n), sql.Identifier(n)) for n in names
        )
        conn.execute(
            sql.SQL("UPDATE {} AS t SET {} FROM privacy_rewrite AS r WHERE t.{} = r.{}").format(
                self._table(), assignments, sql.Identifier(key), sql.Identifier(key)
            )
        )
        return rows

    def rectify(self, tenant, who: Identity, changes: dict, context) -> Outcome:
        changes = check_changes(self, changes)
        match = self._match(who)
        rows = 0
        if match is not None:
            where, params = match
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(n)) for n in changes
            )
            with connect(self.table.database) as conn:
                try:
                    rows = conn.execute(
                        sql.SQL("UPDATE {} SET {} WHERE {}").format(
                            self._table(), assignments, where
                        ),
                        [*changes.values(), *params],
                    ).rowcount
                except psycopg.DataError as exc:
                    raise ValueError(f"{self.name}: {' '.join(str(exc).split())}") from None
                conn.commit()
        return Outcome(
            source=self.name, status="done", rows=rows, strategies=dict.fromkeys(changes, "set")
        )

    def subjects(self, tenant) -> Iterator[str]:
        column = sql.Identifier(self.table.subject_column)
        query = sql.SQL("SELECT DISTINCT {} FROM {} WHERE {} IS NOT NULL").format(
            column, self._table(), column
        )
        reading = connect(self.table.database, read_only=True)
        with reading as conn, conn.cursor(name="privacy_subjects") as cur:
            cur.itersize = FETCH
            cur.execute(query)
            for (value,) in cur:
                yield str(value)

    def replay(self, tenant, key_hashes: set[str], context) -> int:
        kind = self.table.subject_kind
        hits = [
            value
            for value in self.subjects(tenant)
            if ident.hmac_of(context.key, kind, value) in key_hashes
        ]
        if not hits:
            return 0
        column = sql.Identifier(self.table.subject_column)
        return self._erase(sql.SQL("{} = ANY(%s)").format(column), [hits], context).rows
