"""A whole backup_restore drill of a 1,000,000-row portal database, against a bare
`pg_dump -Fc` + `pg_restore` of the same database in the same run; and the checksum rate.

Data (bench/_drill_data.py): a freshly migrated opsportal_bench filled with BENCH_ROWS rows
(1,000,000) in the portal's realistic table mix (CI results, SLO minutes and points, the audit
trail, alert deliveries, flag counts ...), loaded with COPY as the table owner, then ANALYZE.

Measured:
- the drill (`apps.drills.engine.execute` on the portal's own database, in-process with
  production settings, DRILL_RESTORE_JOBS jobs): wall time from start to finish, every phase,
  the RTO (restore + verification) and the verdict, which must be "passed";
- the baseline: `pg_dump -Fc` to a file, then `pg_restore --no-owner --no-acl -j N` into a new
  database, nothing else (`bare_dump_restore_seconds`), with the server's default settings;
- checksums: `apps.drills.verify.checksums` over every table (N connections), in rows per
  second, against `SELECT count(*)` of every table over the same connections (a bare scan).

Targets: drill <= 120 s; checksums >= 200,000 rows/s; drill / bare <= 2x.

Results: bench/results/drill_restore.json. Exits non-zero only if setup fails or the drill does
not pass. Env: BENCH_ROWS (1000000), DRILL_RESTORE_JOBS (2).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _drill_data as data

NAME = "drill_restore"
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
JOBS = int(os.environ.get("DRILL_RESTORE_JOBS", "2"))
BACKUP_DIR = common.BENCH_VAR_DIR / "backups"


def count_rows(conninfo: str, tables: list[tuple[str, str, int]], jobs: int) -> int:
    """The baseline scan: count(*) of every table over `jobs` connections."""
    import psycopg
    from psycopg import sql

    work: queue.Queue = queue.Queue()
    for entry in tables:
        work.put(entry)
    totals: list[int] = []

    def worker() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SET jit = off")
            while True:
                try:
                    schema, table, _ = work.get_nowait()
                except queue.Empty:
                    return
                query = sql.SQL("SELECT count(*) FROM ONLY {}").format(
                    sql.Identifier(schema, table)
                )
                totals.append(conn.execute(query).fetchone()[0])

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals)


def main() -> int:
    machine = common.machine()
    common.setup_database()
    started = time.perf_counter()
    counts = data.populate(common.OWNER_URL, ROWS)
    populate_s = time.perf_counter() - started
    common.log(f"populated {sum(counts.values()):,} rows in {populate_s:.1f} s")

    BACKUP_DIR.mkdir(parents=True, exist_ok=True)
    os.environ["BACKUP_DIR"] = str(BACKUP_DIR)
    os.environ["DRILL_RESTORE_JOBS"] = str(JOBS)
    common.configure_django()
    from apps.drills import engine, pgtools, verify
    from apps.drills.targets import portal_target
    from apps.tenancy.rls import all_tenants_context

    bindir = str(Path(pgtools.binary("pg_restore")).parent)
    common.log("baseline: bare pg_dump -Fc + pg_restore")
    bare = data.bare_dump_restore_seconds(
        common.OWNER_URL,
        f"{common.BENCH_DB}_bare",
        bindir=bindir,
        jobs=JOBS,
        workdir=BACKUP_DIR,
    )
    common.log(f"bare dump + restore: {bare['total_seconds']:.1f} s")

    target = portal_target()
    common.log(f"drill of {target.label}")
    with all_tenants_context():
        began = time.perf_counter()
        report = engine.execute(target, engine.DrillOptions(jobs=JOBS, label="bench"))
        drill_s = time.perf_counter() - began
    common.log(f"drill: {report.status} in {drill_s:.1f} s, RTO {report.rto_seconds} s")
    for backup_file in BACKUP_DIR.glob("portal-*.dump"):
        backup_file.unlink()

    with verify.connect(target.conninfo, autocommit=True) as conn:
        tables = verify.user_tables(conn)
    began = time.perf_counter()
    sums = verify.checksums(target.conninfo, jobs=JOBS, tables=tables)
    checksum_s = time.perf_counter() - began
    checksum_rows = sum(t.rows for t in sums.values())
    began = time.perf_counter()
    counted = count_rows(target.conninfo, tables, JOBS)
    count_s = time.perf_counter() - began
    rate = checksum_rows / checksum_s

    ratio = drill_s / bare["total_seconds"]
    result = {
        "machine": machine,
        "rows": checksum_rows,
        "rows_per_table": counts,
        "populate_seconds": round(populate_s, 1),
        "jobs": JOBS,
        "drill": {
            "status": report.status,
            "seconds": round(drill_s, 2),
            "rto_seconds": report.rto_seconds,
            "backup_bytes": report.backup.size_bytes if report.backup else None,
            "phases": {p.name: p.seconds for p in report.phases},
            "mismatches": report.mismatches,
            "warnings": report.warnings,
            "error": report.error,
        },
        "baseline_bare_dump_restore": bare,
        "ratio_drill_to_bare": round(ratio, 2),
        "checksums": {
            "seconds": round(checksum_s, 2),
            "rows_per_second": round(rate),
            "count_star_seconds": round(count_s, 2),
            "ratio_to_count_star": round(checksum_s / count_s, 2),
            "rows_counted": counted,
        },
        "targets": {
            "drill_seconds_max": 120,
            "drill_met": drill_s <= 120,
            "checksum_rows_per_second_min": 200_000,
            "checksum_met": rate >= 200_000,
            "ratio_max": 2.0,
            "ratio_met": ratio <= 2.0,
        },
    }
    common.write_result(NAME, result)
    common.log(
        f"drill {drill_s:.1f} s (target 120 s), bare {bare['total_seconds']:.1f} s, ratio "
        f"{ratio:.2f}x (target 2x); checksums {rate:,.0f} rows/s (target 200,000), "
        f"{checksum_s / count_s:.2f}x count(*)"
    )
    print(report.render_text().split("Per-table verification:")[0])
    return 0 if report.status == "passed" and counted == checksum_rows else 1


if __name__ == "__main__":
    sys.exit(main())
