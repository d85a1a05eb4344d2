"""Ingesting one 10,000-result compliance run: server time vs a raw COPY and a naive ORM loop.

The portal runs in this process (production settings, DEBUG off, the least-privilege role
opsportal_app, so row-level security is in force; Redis as cache and broker when reachable).
"Server time" is the time Django's WSGI handler takes for `POST /api/v1/compliance/runs` (native
JSON, a CI token): the whole middleware stack, token auth, throttle, reading and parsing the JSON
body, mapping and fingerprinting, the transaction that writes the run, its 10,000 results and
~2,000 violations and recomputes the decision, the audit event and the outbox message, the
broker publish after commit, and rendering the JSON response. It is measured around the WSGI
call with a prebuilt environ, exactly what a gunicorn worker calls: no HTTP, no client.

Data: 10,000 results over the 25 catalog rules and ~200 files, ~20 % violations, ~60-character
messages (bench/_compliance_data.py). Each measured request is a fresh pull request and commit
(a new body each time), REPS of them (default 5); the median is the figure.

Baselines, in the same run and interleaved with the measured requests:
(a) raw COPY: the same 10,000 rows the app writes (same values, fingerprints included) COPYed
    as the table owner into `bench_copy_plain`, a plain table with the same columns as
    compliance_checkresult (no index, no constraint, no RLS: COPY FROM is refused under RLS), the
    data pre-encoded in COPY text format, timed from COPY to COMMIT. The ratio app/COPY is the
    target (<= 3x). For information also into `bench_copy_twin`: the same table with the same
    indexes, primary key and foreign keys as compliance_checkresult (still without RLS).
(b) naive ORM: `CheckResult.objects.create(...)` per row in one transaction, as the app role in
    the tenant's RLS scope (rows pre-built, no parsing). Timed once over all 10,000 rows, unless
    BENCH_NAIVE_ROWS says fewer (then scaled linearly to 10,000, and the result says so).
    Target: the app >= 10x faster.

Also reported, not a target: a later commit of the same pull request (10 % of the results
changed, every line moved: the update path that refreshes, reopens and resolves violations), and a
breakdown of one extra instrumented request (time per phase and per SQL statement).

Results: bench/results/compliance_ingest.json. Exits non-zero only if setup or a request fails.
Env: BENCH_RESULTS (10000), BENCH_REPS (5), BENCH_NAIVE_ROWS (10000).
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _compliance_data as data

NAME = "compliance_ingest"
RESULTS = int(os.environ.get("BENCH_RESULTS", "10000"))
REPS = int(os.environ.get("BENCH_REPS", "5"))
NAIVE_ROWS = int(os.environ.get("BENCH_NAIVE_ROWS", str(RESULTS)))
TARGET_SECONDS = 1.0
TARGET_COPY_RATIO = 3.0
TARGET_NAIVE_SPEEDUP = 10.0
REPOSITORY = "acme/ingest"
PATH = "/api/v1/compliance/runs"
COLUMNS = (
    "tenant_id",
    "run_id",
    "rule_id",
    "status",
    "severity",
    "suppressed",
    "file_path",
    "line",
    "message",
    "fingerprint",
    "tool_rule",
    "context",
    "created_at",
)


# ---- the measured request ---------------------------------------------------------------------
def check(status: int, payload: dict, expected: int, label: str) -> None:
    if status not in (200, 201) or payload.get("results", {}).get("total") != expected:
        raise RuntimeError(f"{label}: HTTP {status}: {json.dumps(payload)[:800]}")


# ---- baseline rows ----------------------------------------------------------------------------------
def app_rows(results: list[dict], *, tenant_id: int, run_id: int, created_at: datetime) -> list:
    """The rows the app writes for these results (RESULT order, same values)."""
    from apps.compliance.ingest.fingerprint import fingerprint
    from apps.compliance.models import Rule
    from apps.tenancy.rls import all_tenants_context

    with all_tenants_context():
        tiers = dict(Rule.objects.values_list("id", "tier"))
    rows = []
    for r in results:
        violated = r["status"] == "VIOLATION"
        rows.append(
            (
                tenant_id,
                run_id,
                r["rule_id"],
                r["status"],
                tiers[r["rule_id"]],
                False,
                r["file_path"],
                r["line"],
                r["message"],
                fingerprint(r["rule_id"], r["file_path"], r["message"]) if violated else "",
                "",
                {},
                created_at,
            )
        )
    return rows


def copy_text(rows: list) -> bytes:
    """COPY text format (no value here needs escaping: checked)."""
    out = io.StringIO()
    for row in rows:
        fields = []
        for value in row:
            if isinstance(value, bool):
                fields.append("t" if value else "f")
            elif isinstance(value, dict):
                fields.append(json.dumps(value))
            elif isinstance(value, datetime):
                fields.append(value.isoformat())
            else:
                text = str(value)
                if any(c in text for c in "\t\n\\\r"):
                    raise ValueError(f"value needs COPY escaping: {text!r}")
                fields.append(text)
        out.write("\t".join(fields) + "\n")
    return out.getvalue().encode()


def create_copy_tables() -> None:
    with data.owner_connection() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_copy_plain, bench_copy_twin")
        cur.execute(
            "CREATE TABLE bench_copy_plain "
            "(LIKE compliance_checkresult INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        cur.execute("CREATE TABLE bench_copy_twin (LIKE compliance_checkresult INCLUDING ALL)")
        cur.execute(
            """
            SELECT pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = 'compliance_checkresult'::regclass AND contype = 'f'
            """
        )
        for (definition,) in cur.fetchall():
            cur.execute(f"ALTER TABLE bench_copy_twin ADD {definition}")
        cur.execute(
            "SELECT relrowsecurity FROM pg_class WHERE relname IN "
            "('bench_copy_plain', 'bench_copy_twin')"
        )
        assert not any(r[0] for r in cur.fetchall()), "baseline tables must be RLS-free"


def timed_copy(table: str, payload: bytes) -> float:
    """Seconds from COPY to COMMIT of a pre-encoded payload, as the owner."""
    with data.owner_connection() as conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {table}")
        conn.commit()
        t0 = time.perf_counter()
        with cur.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            copy.write(payload)
        conn.commit()
        elapsed = time.perf_counter() - t0
        cur.execute(f"SELECT count(*) FROM {table}")
        count = cur.fetchone()[0]
    if count != payload.count(b"\n"):
        raise RuntimeError(f"COPY into {table} wrote {count} rows")
    return elapsed


def naive_orm_loop(tenant, rows: list) -> float:
    from django.db import transaction

    from apps.compliance.models import CheckResult
    from apps.tenancy.rls import tenant_context

    fields = COLUMNS
    with tenant_context(tenant):
        t0 = time.perf_counter()
        with transaction.atomic():
            for row in rows:
                values = dict(zip(fields, row, strict=True))
                CheckResult.objects.create(**values)
        return time.perf_counter() - t0


# ---- breakdown of one request -------------------------------------------------------------------------
class Breakdown:
    """Wall time of the ingestion phases (wrapped functions; nested ones are included in their
    callers) and SQL time per statement kind, for one instrumented request."""

    TARGETS = (
        ("apps.compliance.api", "parse_run", "parse_run (native JSON -> findings)"),
        ("apps.compliance.services", "record_run", "services.record_run (all below)"),
        ("apps.compliance.services", "settings_for", "  settings_for"),
        ("apps.compliance.services", "prepare_run", "  prepare_run (map, fingerprint)"),
        ("apps.compliance.services", "_locked_pull_request", "  lock pull request"),
        ("apps.compliance.bulk", "insert_results", "  bulk.insert_results"),
        ("apps.compliance.services", "_update_violations", "  _update_violations"),
        ("apps.compliance.services", "refresh_pull_request", "  refresh_pull_request"),
        ("apps.compliance.services", "run_response", "  run_response"),
        ("apps.compliance.services", "_mark_rules_checked", "  _mark_rules_checked"),
        ("apps.compliance.services", "record_event", "  audit record_event"),
        ("apps.compliance.services", "enqueue", "  outbox enqueue"),
        ("apps.core.services", "dispatch", "outbox dispatch after commit (broker publish)"),
    )

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.sql: dict[str, list[float]] = {}
        self.originals: list[tuple[object, str, object]] = []

    def install(self) -> None:
        import importlib

        from django.db import connection
        from psycopg.pq import TransactionStatus

        for module_name, attr, label in self.TARGETS:
            module = importlib.import_module(module_name)
            original = getattr(module, attr)
            self.originals.append((module, attr, original))
            setattr(module, attr, self._timed(original, label))
        connection.execute_wrappers.append(self._sql)
        original_commit = connection._commit

        def timed_commit():
            # The foreign keys are DEFERRABLE INITIALLY DEFERRED (Django's default): their checks
            # run at COMMIT. Fire them first, separately timed, then commit.
            raw = connection.connection
            if raw is not None and raw.info.transaction_status == TransactionStatus.INTRANS:
                t0 = time.perf_counter()
                raw.execute("SET CONSTRAINTS ALL IMMEDIATE")
                self._add("COMMIT: deferred foreign key checks", time.perf_counter() - t0)
            t0 = time.perf_counter()
            try:
                return original_commit()
            finally:
                self._add("COMMIT: the commit itself (WAL flush)", time.perf_counter() - t0)

        connection._commit = timed_commit

    def uninstall(self) -> None:
        from django.db import connection

        for module, attr, original in self.originals:
            setattr(module, attr, original)
        connection.execute_wrappers.remove(self._sql)
        del connection._commit

    def _add(self, label: str, seconds: float) -> None:
        self.wall[label] = self.wall.get(label, 0.0) + seconds

    def _timed(self, func, label):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - t0

        return wrapper

    def _sql(self, execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            label = statement_label(sql)
            self.sql.setdefault(label, []).append(time.perf_counter() - t0)

    def summary(self, total: float) -> dict:
        labels = [label for _, _, label in self.TARGETS]
        labels.insert(-1, "COMMIT: deferred foreign key checks")
        labels.insert(-1, "COMMIT: the commit itself (WAL flush)")
        return {
            "request_ms": round(1000 * total, 1),
            "phases_ms": {
                label: round(1000 * self.wall[label], 1) for label in labels if label in self.wall
            },
            "sql_ms_by_statement": {
                label: {"count": len(times), "ms_total": round(1000 * sum(times), 2)}
                for label, times in sorted(self.sql.items(), key=lambda kv: -sum(kv[1]))
            },
            "sql_ms_total": round(1000 * sum(sum(t) for t in self.sql.values()), 1),
            "sql_statements": sum(len(t) for t in self.sql.values()),
        }


_UNQUOTED_TABLE = re.compile(r"(?:FROM|INTO|UPDATE)\s+(\w+)")
_SET_COLUMN = re.compile(r'\sSET\s+"?(\w+)"?')


def statement_label(sql: str) -> str:
    label = common.statement_label(sql)
    if label.endswith(" ?"):  # bulk.py names its tables unquoted
        table = _UNQUOTED_TABLE.search(sql)
        if table:
            label = f"{label[:-2]} {table.group(1)}"
    if label.startswith("UPDATE"):
        columns = _SET_COLUMN.search(sql)
        if columns:
            label += f" SET {columns.group(1)}"
    if "unnest(" in sql:
        label += " (unnest arrays)"
    return label


def instrumented_request(
    portal: data.InProcessPortal, commit_sha: str, results: list[dict]
) -> dict:
    body = data.run_body(
        repository=REPOSITORY, pull_request=800, commit_sha=commit_sha, results=results
    )
    t0 = time.perf_counter()
    json.loads(body)
    json_loads_s = time.perf_counter() - t0
    breakdown = Breakdown()
    breakdown.install()
    try:
        wall, _cpu, status, payload = portal.post(body)
    finally:
        breakdown.uninstall()
    check(status, payload, RESULTS, "instrumented")
    out = breakdown.summary(wall)
    out["json_loads_of_body_ms"] = round(1000 * json_loads_s, 1)
    out["body_bytes"] = len(body)
    out["new_violations"] = payload["new_violations"]
    out["resolved_violations"] = payload["resolved_violations"]
    return out


def summarize(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
        "all_s": [round(v, 4) for v in values],
    }


# ---- main ---------------------------------------------------------------------------------------------
def main() -> int:
    started_all = time.perf_counter()
    common.log(f"{NAME}: {RESULTS}-result runs in-process, {REPS} repetitions")
    machine = common.machine()
    redis_env, redis_client = data.prepare_portal()
    from django.db import connection

    tenant, token = data.create_tenant_with_token("bench-ingest")
    portal = data.InProcessPortal(token, PATH)
    create_copy_tables()
    with connection.cursor() as cur:
        cur.execute("SELECT current_user, version()")
        db_user, db_version = cur.fetchone()

    try:
        # Warm-up: two full-size runs (first use creates the tenant's gate settings, imports
        # and caches); not counted.
        for i in range(2):
            body = data.run_body(
                repository=REPOSITORY,
                pull_request=900 + i,
                commit_sha=data.sha("warm", i),
                results=data.results(RESULTS, seed=900 + i),
            )
            wall, _cpu, status, payload = portal.post(body)
            check(status, payload, RESULTS, "warm-up")
            common.log(f"  warm-up {i + 1}: {1000 * wall:.0f} ms")

        app_wall, app_cpu, copy_plain, copy_twin = [], [], [], []
        responses = []
        first_results = {}
        for rep in range(REPS):
            results = data.results(RESULTS, seed=rep)
            first_results[rep] = results
            body = data.run_body(
                repository=REPOSITORY,
                pull_request=1 + rep,
                commit_sha=data.sha("fresh", rep),
                results=results,
            )
            wall, cpu, status, payload = portal.post(body)
            check(status, payload, RESULTS, f"rep {rep + 1}")
            app_wall.append(wall)
            app_cpu.append(cpu)
            responses.append(payload)
            rows = app_rows(
                results,
                tenant_id=tenant.pk,
                run_id=payload["id"],
                created_at=datetime.fromisoformat(payload["received_at"]),
            )
            encoded = copy_text(rows)
            copy_plain.append(timed_copy("bench_copy_plain", encoded))
            copy_twin.append(timed_copy("bench_copy_twin", encoded))
            common.log(
                f"  rep {rep + 1}: app {1000 * wall:7.1f} ms (CPU {1000 * cpu:.0f} ms, "
                f"{payload['results']['violations']} violations, "
                f"{payload['new_violations']} new)  COPY plain {1000 * copy_plain[-1]:6.1f} ms"
                f"  COPY twin {1000 * copy_twin[-1]:6.1f} ms"
            )

        # A later commit of the same pull requests: the update path.
        update_wall = []
        update_payloads = []
        for rep in range(min(3, REPS)):
            results = data.next_commit(first_results[rep], seed=100 + rep)
            body = data.run_body(
                repository=REPOSITORY,
                pull_request=1 + rep,
                commit_sha=data.sha("second", rep),
                results=results,
            )
            wall, _cpu, status, payload = portal.post(body)
            check(status, payload, RESULTS, f"second commit {rep + 1}")
            update_wall.append(wall)
            update_payloads.append(payload)
            common.log(
                f"  second commit of PR {1 + rep}: {1000 * wall:7.1f} ms "
                f"({payload['new_violations']} new, {payload['resolved_violations']} resolved)"
            )

        # Instrumented requests (not counted above): where the time goes, on a fresh pull
        # request and on its next commit.
        instrumented_results = data.results(RESULTS, seed=800)
        instrumented = instrumented_request(portal, data.sha("instrumented"), instrumented_results)
        instrumented_update = instrumented_request(
            portal,
            data.sha("instrumented", 2),
            data.next_commit(instrumented_results, seed=801),
        )

        # Naive ORM loop baseline.
        naive_results = data.results(NAIVE_ROWS, seed=777)
        naive_rows = app_rows(
            naive_results,
            tenant_id=tenant.pk,
            run_id=responses[0]["id"],
            created_at=datetime.now(UTC),
        )
        common.log(f"naive ORM loop: {NAIVE_ROWS} x CheckResult.objects.create in one transaction")
        naive_s = naive_orm_loop(tenant, naive_rows)
        naive_scaled = naive_s * RESULTS / NAIVE_ROWS
        common.log(
            f"  {naive_s:.2f} s for {NAIVE_ROWS} rows"
            + (f" -> {naive_scaled:.2f} s for {RESULTS} (scaled)" if NAIVE_ROWS != RESULTS else "")
        )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        data.flush_redis(redis_client)
        sys.exit(f"failed: {exc}".splitlines()[0])
    data.flush_redis(redis_client)
    with data.owner_connection() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_copy_plain, bench_copy_twin")

    app = summarize(app_wall)
    median_app = app["median_s"]
    median_copy = statistics.median(copy_plain)
    median_twin = statistics.median(copy_twin)
    copy_ratio = median_app / median_copy
    naive_speedup = naive_scaled / median_app
    sample = responses[0]
    result = {
        "description": f"POST {PATH} with {RESULTS} native results, server time in-process "
        "(Django WSGI handler, full middleware stack, prebuilt environ) vs a raw COPY of the "
        "same rows and a naive per-row ORM loop, same run",
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "database": {"name": common.BENCH_DB, "user": db_user, "server": db_version},
        "cache_and_broker": redis_env.get("REDIS_URL", "file cache / file broker"),
        "throttle_rate": os.environ["THROTTLE_RATE"],
        "run": {
            "results": RESULTS,
            "body_bytes_typical": instrumented["body_bytes"],
            "violations_typical": sample["results"]["violations"],
            "violations_opened_typical": sample["new_violations"],
            "decision_typical": sample["decision"],
        },
        "repetitions": REPS,
        "app_server_time": app,
        "app_cpu_s_median": round(statistics.median(app_cpu), 4),
        "app_rows_per_s": round(RESULTS / median_app),
        "baseline_copy_plain": {
            **summarize(copy_plain),
            "table": "bench_copy_plain: same columns as compliance_checkresult, no index, "
            "no constraint, no RLS; pre-encoded COPY text, COPY to COMMIT, as the owner",
        },
        "baseline_copy_twin": {
            **summarize(copy_twin),
            "table": "bench_copy_twin: same columns, indexes, primary key and foreign keys as "
            "compliance_checkresult, no RLS (information only)",
        },
        "baseline_naive_orm": {
            "rows_timed": NAIVE_ROWS,
            "seconds": round(naive_s, 3),
            "seconds_for_run": round(naive_scaled, 3),
            "scaled": NAIVE_ROWS != RESULTS,
            "method": "CheckResult.objects.create(...) per row in one transaction.atomic(), app "
            "role in the tenant's RLS scope, rows pre-built",
        },
        "ratio_app_to_copy": round(copy_ratio, 2),
        "ratio_app_to_copy_twin": round(median_app / median_twin, 2),
        "speedup_vs_naive_orm": round(naive_speedup, 1),
        "targets": {
            "server_time_s": TARGET_SECONDS,
            "server_time_met": median_app <= TARGET_SECONDS,
            "copy_ratio_max": TARGET_COPY_RATIO,
            "copy_ratio_met": copy_ratio <= TARGET_COPY_RATIO,
            "naive_speedup_min": TARGET_NAIVE_SPEEDUP,
            "naive_speedup_met": naive_speedup >= TARGET_NAIVE_SPEEDUP,
        },
        "second_commit_same_pr": {
            **summarize(update_wall),
            "note": "same pull request, new commit, 10 % of results flipped, lines moved",
            "new_violations": [p["new_violations"] for p in update_payloads],
            "resolved_violations": [p["resolved_violations"] for p in update_payloads],
        },
        "instrumented_request": instrumented,
        "instrumented_request_second_commit": instrumented_update,
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)
    print_report(result)
    return 0


def _met(ok: bool) -> str:
    return "target met" if ok else "target NOT met"


def print_report(r: dict) -> None:
    t = r["targets"]
    app = r["app_server_time"]
    print()
    print(
        f"{NAME} ({r['run']['results']} results, {r['run']['body_bytes_typical']:,} B body, "
        f"{r['run']['violations_typical']} violations; {r['repetitions']} fresh pull requests; "
        f"{r['machine']['cpus']} CPUs)"
    )
    print(
        f"  app server time: median {1000 * app['median_s']:.0f} ms (min {1000 * app['min_s']:.0f}"
        f", max {1000 * app['max_s']:.0f}), CPU {1000 * r['app_cpu_s_median']:.0f} ms, "
        f"{r['app_rows_per_s']:,} results/s  ({_met(t['server_time_met'])}: <= "
        f"{t['server_time_s']:g} s)"
    )
    print(
        f"  raw COPY, plain table: median {1000 * r['baseline_copy_plain']['median_s']:.0f} ms -> "
        f"app/COPY = {r['ratio_app_to_copy']:.2f}x ({_met(t['copy_ratio_met'])}: <= "
        f"{t['copy_ratio_max']:g}x)"
    )
    print(
        f"  raw COPY, twin table (same indexes and FKs): median "
        f"{1000 * r['baseline_copy_twin']['median_s']:.0f} ms -> app/COPY = "
        f"{r['ratio_app_to_copy_twin']:.2f}x (information)"
    )
    n = r["baseline_naive_orm"]
    print(
        f"  naive ORM loop: {n['seconds_for_run']:.2f} s for {r['run']['results']} rows"
        f"{' (scaled from ' + str(n['rows_timed']) + ')' if n['scaled'] else ''} -> app is "
        f"{r['speedup_vs_naive_orm']:.1f}x faster ({_met(t['naive_speedup_met'])}: >= "
        f"{t['naive_speedup_min']:g}x)"
    )
    s = r["second_commit_same_pr"]
    print(
        f"  second commit of the same PR (update path): median {1000 * s['median_s']:.0f} ms "
        f"(new {s['new_violations']}, resolved {s['resolved_violations']})"
    )
    for key, title in (
        ("instrumented_request", "instrumented request, fresh pull request"),
        ("instrumented_request_second_commit", "instrumented request, its next commit"),
    ):
        b = r[key]
        print(
            f"  {title}: {b['request_ms']:.0f} ms, {b['sql_statements']} SQL statements, "
            f"{b['sql_ms_total']:.0f} ms in SQL (commit not included); json.loads of the body "
            f"alone {b['json_loads_of_body_ms']:.0f} ms; {b['new_violations']} new, "
            f"{b['resolved_violations']} resolved violations"
        )
        for label, ms in b["phases_ms"].items():
            print(f"    {ms:8.1f} ms  {label}")
        print("    SQL by statement (ms total, count):")
        for label, s in list(b["sql_ms_by_statement"].items())[:6]:
            print(f"    {s['ms_total']:8.1f} ms  x{s['count']:<3d} {label}")
    print(f"  bench wall time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
