"""Set-based upserts for ingestion.

Django's `bulk_create(update_conflicts=True)` spends most of a 10,000-row batch quoting arrays
in Python. On PostgreSQL the rows are COPYed (encoded by psycopg in C) into a session temp table,
which has no row-level security (COPY into an RLS table is refused), and moved with one
`INSERT … SELECT … ON CONFLICT DO UPDATE`, which row-level security checks. Elsewhere (SQLite,
`make run`'s default) Django's bulk_create does the same job.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from django.db import connection, transaction


def json_text(value) -> str:
    """JSON for a jsonb column; PostgreSQL refuses the NUL character in jsonb."""
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    text = orjson.dumps(value).decode()
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


def upsert(
    model,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[tuple],
    *,
    conflict: Sequence[str],
    update: Sequence[str],
    additive: bool = False,
    count_existing: bool = False,
) -> int | None:
    """Insert `rows` (tuples in `columns` order; jsonb values as Python objects); rows that
    collide on `conflict` (a unique constraint's columns) get their `update` columns replaced,
    or, with `additive`, increased by the new values. With `count_existing`, returns how many
    rows collided (PostgreSQL; None elsewhere, where the caller must assume some did)."""
    if not rows:
        return 0
    names = [name for name, _ in columns]
    if connection.vendor != "postgresql":
        assert not additive, "additive upserts need PostgreSQL"
        model.objects.bulk_create(
            [model(**dict(zip(names, row, strict=True))) for row in rows],
            batch_size=2000,
            update_conflicts=True,
            unique_fields=[c.removesuffix("_id") for c in conflict],
            update_fields=[c.removesuffix("_id") for c in update],
        )
        return None
    table = model._meta.db_table
    stage = f"{table}_stage"
    json_columns = [i for i, (_, kind) in enumerate(columns) if kind == "jsonb"]
    column_list = ", ".join(names)
    definition = ", ".join(f"{name} {kind}" for name, kind in columns)
    if additive:
        assignments = ", ".join(f"{name} = {table}.{name} + EXCLUDED.{name}" for name in update)
    else:
        assignments = ", ".join(f"{name} = EXCLUDED.{name}" for name in update)
    existing = None
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({definition}) ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN") as copy:
            write = copy.write_row
            if json_columns:
                for row in rows:
                    values = list(row)
                    for index in json_columns:
                        values[index] = json_text(values[index])
                    write(values)
            else:
                for row in rows:
                    write(row)
        insert = (
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {stage} "  # noqa: S608
            f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {assignments}"
        )
        if count_existing:
            # A row the upsert inserted has no deleting transaction yet (xmax = 0); a row it
            # updated does. Counting in the statement itself costs nothing extra, unlike a join
            # against the (never analysed) staging table.
            cursor.execute(
                f"WITH up AS ({insert} RETURNING (xmax = 0) AS inserted) "  # noqa: S608
                "SELECT count(*) FILTER (WHERE NOT inserted) FROM up"
            )
            existing = cursor.fetchone()[0]
        else:
            cursor.execute(insert)
        cursor.execute(f"DROP TABLE {stage}")
    return existing
