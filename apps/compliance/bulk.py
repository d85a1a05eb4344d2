"""Set-based writes for the ingestion path.

A 10,000-result run must be stored in well under a second. On PostgreSQL the results are
COPYed into a session temp table (COPY FROM is refused on tables with row-level security, which
the app role is subject to; the temp table has none) and moved with one `INSERT … SELECT`, which
row-level security checks. Violations, a few thousand at most, use `INSERT … SELECT FROM
unnest(arrays)` and `UPDATE … FROM unnest(arrays)`. Elsewhere, Django's bulk_create/bulk_update.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from django.db import connection

from apps.compliance.models import CheckResult, Violation

RESULT_COLUMNS = (
    ("rule_id", "text"),
    ("status", "text"),
    ("severity", "text"),
    ("suppressed", "bool"),
    ("file_path", "text"),
    ("line", "int"),
    ("message", "text"),
    ("fingerprint", "text"),
    ("tool_rule", "text"),
    ("context", "jsonb"),
)
VIOLATION_COLUMNS = (
    ("rule_id", "text"),
    ("tool", "text"),
    ("fingerprint", "text"),
    ("severity", "text"),
    ("status", "text"),
    ("file_path", "text"),
    ("line", "int"),
    ("message", "text"),
    ("occurrences", "int"),
)
VIOLATION_UPDATE_COLUMNS = (
    ("id", "bigint"),
    ("severity", "text"),
    ("status", "text"),
    ("line", "int"),
    ("message", "text"),
    ("occurrences", "int"),
)


def _json_text(value: dict) -> str:
    """JSON for a jsonb column. PostgreSQL refuses the NUL character in text and jsonb alike."""
    if not value:
        return "{}"
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


def _columns(rows: Sequence[tuple], width: int) -> list[list]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _unnest(columns: tuple[tuple[str, str], ...]) -> str:
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
    names = ", ".join(name for name, _ in columns)
    return f"unnest({arrays}) AS r({names})"


def insert_results(
    *, tenant_id: int, run_id: int, created_at: datetime, rows: Sequence[tuple]
) -> None:
    """rows: tuples in RESULT_COLUMNS order, `context` as a dict."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        CheckResult.objects.bulk_create(
            [
                CheckResult(
                    tenant_id=tenant_id,
                    run_id=run_id,
                    created_at=created_at,
                    **dict(zip((name for name, _ in RESULT_COLUMNS), row, strict=True)),
                )
                for row in rows
            ],
            batch_size=1000,
        )
        return
    names = ", ".join(name for name, _ in RESULT_COLUMNS)
    definition = ", ".join(f"{name} {kind}" for name, kind in RESULT_COLUMNS)
    with connection.cursor() as cursor:
        # A session temp table (no RLS of its own; emptied at commit) filled with COPY, whose
        # rows psycopg encodes in C, then one INSERT ... SELECT into the RLS-checked table.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS compliance_result_stage ({definition})"
            " ON COMMIT DELETE ROWS"
        )
        with cursor.cursor.copy(f"COPY compliance_result_stage ({names}) FROM STDIN") as copy:
            write = copy.write_row
            for row in rows:
                write((*row[:-1], _json_text(row[-1])))
        cursor.execute(
            f"INSERT INTO {CheckResult._meta.db_table} (tenant_id, run_id, created_at, {names}) "  # noqa: S608
            f"SELECT %s, %s, %s, {names} FROM compliance_result_stage",
            [tenant_id, run_id, created_at],
        )
        # Emptied now, not only at commit: two runs may be recorded in one transaction.
        cursor.execute("TRUNCATE compliance_result_stage")


def insert_violations(
    *,
    tenant_id: int,
    pull_request_id: int,
    run_id: int,
    seen_at: datetime,
    rows: Sequence[tuple],
) -> None:
    """rows: tuples in VIOLATION_COLUMNS order."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        Violation.objects.bulk_create(
            [
                Violation(
                    tenant_id=tenant_id,
                    pull_request_id=pull_request_id,
                    first_seen_run_id=run_id,
                    last_seen_run_id=run_id,
                    first_seen_at=seen_at,
                    last_seen_at=seen_at,
                    **dict(zip((name for name, _ in VIOLATION_COLUMNS), row, strict=True)),
                )
                for row in rows
            ],
            batch_size=1000,
        )
        return
    names = ", ".join(name for name, _ in VIOLATION_COLUMNS)
    selected = ", ".join(f"r.{name}" for name, _ in VIOLATION_COLUMNS)
    sql = (
        f"INSERT INTO {Violation._meta.db_table} (tenant_id, pull_request_id, first_seen_run_id,"  # noqa: S608
        f" last_seen_run_id, first_seen_at, last_seen_at, resolved_by_commit, {names})"
        f" SELECT %s, %s, %s, %s, %s, %s, '', {selected} FROM {_unnest(VIOLATION_COLUMNS)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                tenant_id,
                pull_request_id,
                run_id,
                run_id,
                seen_at,
                seen_at,
                *_columns(rows, len(VIOLATION_COLUMNS)),
            ],
        )


def update_seen_violations(*, run_id: int, seen_at: datetime, rows: Sequence[tuple]) -> None:
    """Violations seen again: refresh what the latest run says and (re)open them.

    rows: tuples in VIOLATION_UPDATE_COLUMNS order.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        objects = []
        for violation_id, severity, status, line, message, occurrences in rows:
            objects.append(
                Violation(
                    pk=violation_id,
                    severity=severity,
                    status=status,
                    line=line,
                    message=message,
                    occurrences=occurrences,
                    last_seen_run_id=run_id,
                    last_seen_at=seen_at,
                    resolved_at=None,
                    resolved_by_commit="",
                )
            )
        Violation.objects.bulk_update(
            objects,
            [
                "severity",
                "status",
                "line",
                "message",
                "occurrences",
                "last_seen_run_id",
                "last_seen_at",
                "resolved_at",
                "resolved_by_commit",
            ],
            batch_size=1000,
        )
        return
    table = Violation._meta.db_table
    sql = (
        f"UPDATE {table} AS v SET severity = r.severity, status = r.status, line = r.line,"  # noqa: S608
        " message = r.message, occurrences = r.occurrences, last_seen_run_id = %s,"
        " last_seen_at = %s, resolved_at = NULL, resolved_by_commit = ''"
        f" FROM {_unnest(VIOLATION_UPDATE_COLUMNS)} WHERE v.id = r.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_id, seen_at, *_columns(rows, len(VIOLATION_UPDATE_COLUMNS))])
