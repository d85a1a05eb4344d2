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

from apps.privacy import identity as ident
from apps.privacy.identity import Identity
from apps.privacy.masking import FieldSpec, deletes_row, masked, spec, validate_specs
from apps.privacy.models import ExternalDatabase, ExternalTable, Strategy, SubjectKind
from apps.privacy.sources import Outcome, Preview, Source, SourceError, check_changes
from opsportal import crypto

FETCH = 5000
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


@contextmanager
def connect(database: ExternalDatabase, *, autocommit: bool = False):
    try:
        conn = psycopg.connect(
            crypto.decrypt(database.dsn_ciphertext),
            connect_timeout=CONNECT_TIMEOUT,
            autocommit=autocommit,
            application_name="opsportal-privacy",
        )
    except psycopg.OperationalError as exc:
        raise SourceError(
            f"cannot connect to {database.dsn_hint}: {' '.join(str(exc).split())}"
        ) from None
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
        with connect(table.database, autocommit=True) as conn:
            types = column_types(conn, table.table)
    except SourceError as exc:
        raise ValidationError({"database": str(exc)}) from None
    if not types:
        raise ValidationError({"table": f"No table {table.table} in {table.database.dsn_hint}."})
    for field_name in ("key_column", "subject_column"):
        column = getattr(table, field_name)
        if column not in types:
            errors[field_name] = f"No column {column} in {table.table}."
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
        with connect(self.table.database) as conn, conn.cursor(name="privacy_export") as cursor:
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
            with connect(self.table.database, autocommit=True) as conn:
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
        with connect(self.table.database) as conn, conn.cursor(name="privacy_subjects") as cur:
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
