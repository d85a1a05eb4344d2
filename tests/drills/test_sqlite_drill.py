"""The embedded default: the same drill on SQLite through the online backup API,
PRAGMA integrity_check and the same per-table checksums."""

from __future__ import annotations

import sqlite3

import pytest

from apps.drills import engine
from apps.drills.targets import Target


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE account (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT)")
        conn.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, account_id INTEGER, body BLOB)")
        conn.execute("CREATE INDEX note_account ON note (account_id)")
        conn.executemany(
            "INSERT INTO account (email) VALUES (?)",
            [(f"user{n}@example.com",) for n in range(300)],
        )
        conn.executemany(
            "INSERT INTO note (account_id, body) VALUES (?, ?)",
            [(n % 300, bytes([n % 256]) * 20) for n in range(900)],
        )
    return path


def _target(path, *, portal: bool = False) -> Target:
    return Target(
        engine="sqlite",
        key="sqlite-test",
        label=f"sqlite:{path}",
        sqlite_path=path,
        is_portal=portal,
    )


def test_a_sqlite_drill_passes_with_the_same_report_shape(db, sqlite_db, backup_dir):
    report = engine.execute(_target(sqlite_db), engine.DrillOptions())

    assert report.status == "passed", report.mismatches or report.error
    assert report.engine == "sqlite"
    tables = {t.table: t for t in report.tables}
    assert tables["main.account"].source_rows == tables["main.account"].shadow_rows == 300
    assert tables["main.note"].source_checksum == tables["main.note"].shadow_checksum
    integrity = next(p for p in report.phases if p.name == "integrity")
    assert integrity.status == "ok" and "integrity_check" in integrity.detail
    assert report.backup.size_bytes > 0 and len(report.backup.sha256) == 64
    assert not list(backup_dir.glob("drill_shadow_*"))  # the shadow file is gone
    text = report.render_text()
    assert "Per-table verification:" in text and "Result: PASSED" in text


def test_a_row_changed_in_the_sqlite_shadow_is_caught(db, sqlite_db, backup_dir):
    def tamper(backend, shadow):
        with sqlite3.connect(backend.shadow_conninfo(shadow)) as conn:
            conn.execute("UPDATE note SET body = x'00' WHERE id = 5")

    report = engine.execute(_target(sqlite_db), engine.DrillOptions(after_restore=tamper))
    assert report.status == "failed"
    assert [m.split(":")[0] for m in report.mismatches] == ["table main.note"]


def test_readiness_catches_a_copy_that_is_not_a_migrated_portal_database(db, sqlite_db, backup_dir):
    report = engine.execute(_target(sqlite_db, portal=True), engine.DrillOptions())
    assert report.status == "failed"
    assert any(m.startswith("migrations not at head") for m in report.mismatches)
    assert any("smoke query on" in m for m in report.mismatches)
