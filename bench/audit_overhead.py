"""What audit + idempotency cost on a write: 10,000 evidence writes each way, same run, same DB.

baseline  `EvidenceArtifact.objects.create(...)` in its own `transaction.atomic()`: the bare ORM
          write of the same row (content hash included, since an artifact needs it either way).
measured  the path `POST /api/v1/audit/evidence` takes below HTTP and DRF: the real
          `opsportal.api.idempotency.idempotent` decorator (look-up, idempotency record, replay
          bookkeeping) around `apps.audit.services.store_evidence` (artifact + hash-chained audit
          event), all in one transaction. A stub request/view stands in for DRF; the view builds
          the response body by hand, so no serializer or rendering cost is counted on either side.

Both run as the least-privilege role `opsportal_app` inside `tenant_context(tenant)`, so row-level
security is in force as in production. The two are interleaved in blocks (baseline block,
measured block, ...) so that background load on the machine hits both alike.

Reports writes/s, per-write p50/p95 and overhead = measured_time / baseline_time - 1 (target in
the issue: <= 30 %), then attributes the measured path's time (SQL statements per write, time in
the database vs in Python, client CPU, cProfile top functions) on PROFILE_WRITES extra writes
of each kind, outside the timed figures. Results: bench/results/audit_overhead.json.
Timing is reported, never asserted: exit status is non-zero only if setup fails.

Env: BENCH_WRITES (default 10000), BENCH_BLOCK (default 500), BENCH_PROFILE_WRITES (default 400).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import sysconfig
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

NAME = "audit_overhead"
WRITES = int(os.environ.get("BENCH_WRITES", "10000"))
BLOCK = int(os.environ.get("BENCH_BLOCK", "500"))
WARMUP = 200
PROFILE_WRITES = int(os.environ.get("BENCH_PROFILE_WRITES", "400"))
ENDPOINT_PATH = "/api/v1/audit/evidence"
KIND = "release.evidence"


def evidence_content(i: int) -> dict:
    """A realistic ~1.3 kB evidence document (a CI run's rule results), distinct per write."""
    return {
        "pipeline": "payments-api",
        "build": i,
        "commit": f"{i:040x}",
        "score": 96,
        "gate": "pass",
        "rules": [{"rule": f"R{n:02d}", "status": "pass", "findings": 0} for n in range(1, 26)],
    }


def period(i: int) -> str:
    return f"2026-11-{i % 28 + 1:02d}"


def main() -> int:
    common.log(f"{NAME}: {WRITES} writes each way, blocks of {BLOCK}")
    started_all = time.perf_counter()
    machine = common.machine()
    common.setup_database()
    common.configure_django()

    import json

    from django.db import connection, transaction
    from rest_framework.response import Response

    from apps.audit.hashing import sha256_of
    from apps.audit.models import AuditChain, AuditEvent, EvidenceArtifact
    from apps.audit.services import store_evidence
    from apps.core.models import IdempotencyRecord
    from apps.tenancy import rls
    from apps.tenancy.services import create_tenant
    from opsportal.api.idempotency import idempotent
    from opsportal.context import Actor, acting_as, reset_request_id, set_request_id

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, version()")
        db_user, db_version = cursor.fetchone()
    common.log(f"connected as {db_user}")
    with rls.all_tenants_context():
        tenant = create_tenant(slug="bench", name="Benchmark tenant")

    # ---- the two write paths -------------------------------------------------------------
    def baseline_write(i: int) -> None:
        content = evidence_content(i)
        with transaction.atomic():
            EvidenceArtifact.objects.create(
                tenant=tenant,
                kind=KIND,
                period=period(i),
                content=content,
                sha256=sha256_of(content),
            )

    class _Request:
        """What the idempotency decorator reads from a DRF request, nothing more."""

        method = "POST"
        path = ENDPOINT_PATH
        resolver_match = SimpleNamespace(view_name="v1:evidence-list")

        def __init__(self, key: str, data: dict):
            self.headers = {"Idempotency-Key": key}
            self.tenant = tenant
            self.data = data
            self.body = json.dumps(data).encode()

        def get_full_path(self) -> str:
            return self.path

    class _EvidenceView:
        @idempotent
        def post(self, request):
            artifact = store_evidence(tenant_id=request.tenant.pk, **request.data)
            response = Response(
                {
                    "id": artifact.pk,
                    "kind": artifact.kind,
                    "period": artifact.period,
                    "content": artifact.content,
                    "sha256": artifact.sha256,
                    "created_at": artifact.created_at.isoformat(),
                },
                status=201,
            )
            response["Location"] = f"{ENDPOINT_PATH}/{artifact.pk}"
            return response

    view = _EvidenceView()

    def measured_write(i: int) -> None:
        data = {"kind": KIND, "period": period(i), "content": evidence_content(i)}
        token = set_request_id(f"bench-{i:08d}")
        try:
            response = view.post(_Request(f"bench-key-{i}", data))
        finally:
            reset_request_id(token)
        if response.status_code != 201:
            raise RuntimeError(f"measured write {i} answered {response.status_code}")

    def run_block(write, start: int, count: int, latencies: list[float]) -> float:
        block_started = time.perf_counter()
        for i in range(start, start + count):
            t0 = time.perf_counter()
            write(i)
            latencies.append(time.perf_counter() - t0)
        return time.perf_counter() - block_started

    def summary(total: float, latencies: list[float]) -> dict:
        ordered = sorted(latencies)
        return {
            "writes": len(latencies),
            "total_s": round(total, 3),
            "writes_per_s": round(len(latencies) / total, 1),
            "latency_ms": {
                "mean": round(1000 * total / len(latencies), 3),
                "p50": round(1000 * common.percentile(ordered, 50), 3),
                "p95": round(1000 * common.percentile(ordered, 95), 3),
                "p99": round(1000 * common.percentile(ordered, 99), 3),
            },
        }

    actor = Actor(token_id=1, label="bench-ci-token", ip="127.0.0.1")
    with acting_as(actor), rls.tenant_context(tenant):
        # ---- warm-up (not counted) -------------------------------------------------------
        next_id = 10_000_000
        run_block(baseline_write, next_id, WARMUP, [])
        run_block(measured_write, next_id, WARMUP, [])
        next_id += WARMUP

        # ---- timed, interleaved blocks ---------------------------------------------------
        base_lat: list[float] = []
        meas_lat: list[float] = []
        base_total = meas_total = 0.0
        done = 0
        while done < WRITES:
            count = min(BLOCK, WRITES - done)
            base_total += run_block(baseline_write, done, count, base_lat)
            meas_total += run_block(measured_write, done, count, meas_lat)
            done += count
            if done % (BLOCK * 4) == 0 or done == WRITES:
                common.log(
                    f"  {done}/{WRITES}: baseline {base_total:.1f} s, measured {meas_total:.1f} s"
                )

        baseline = summary(base_total, base_lat)
        measured = summary(meas_total, meas_lat)
        overhead = meas_total / base_total - 1

        # ---- where the measured path's time goes -----------------------------------------
        next_id = 20_000_000
        attribution = {
            "baseline": _sql_accounting(connection, baseline_write, next_id, PROFILE_WRITES),
            "measured": _sql_accounting(connection, measured_write, next_id, PROFILE_WRITES),
        }
        next_id += PROFILE_WRITES
        profile_text, profile_top = _cprofile(measured_write, next_id, PROFILE_WRITES)

    with rls.all_tenants_context():
        rows = {
            "evidence_artifacts": EvidenceArtifact.objects.count(),
            "audit_events": AuditEvent.objects.count(),
            "idempotency_records": IdempotencyRecord.objects.count(),
            "chain_last_seq": AuditChain.objects.get(key=f"tenant:{tenant.pk}").last_seq,
        }

    machine["loadavg_at_end"] = os.getloadavg()
    target = 0.30
    result = {
        "description": "10,000 evidence writes: bare ORM create vs idempotency + store_evidence "
        "(artifact + hash-chained audit event), interleaved in one run",
        "machine": machine,
        "database": {"name": common.BENCH_DB, "user": db_user, "server": db_version},
        "writes_each": WRITES,
        "block": BLOCK,
        "baseline": baseline,
        "measured": measured,
        "ratio_measured_to_baseline_time": round(meas_total / base_total, 3),
        "overhead_pct": round(100 * overhead, 1),
        "target_overhead_pct": 100 * target,
        "target_met": overhead <= target,
        "attribution_per_write": attribution,
        "cprofile_top_tottime": profile_top,
        "rows_after": rows,
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)

    print()
    print(f"audit_overhead ({WRITES} writes each way, {machine['cpus']} CPUs, as {db_user})")
    for label, s in (("baseline (ORM create)", baseline), ("measured (idem+audit)", measured)):
        lat = s["latency_ms"]
        print(
            f"  {label:24s} {s['writes_per_s']:8.1f} writes/s   total {s['total_s']:7.2f} s   "
            f"p50 {lat['p50']:.3f} ms   p95 {lat['p95']:.3f} ms"
        )
    print(
        f"  ratio measured/baseline time: {meas_total / base_total:.2f}x   "
        f"overhead {100 * overhead:+.1f} % (target <= {100 * target:.0f} %: "
        f"{'met' if overhead <= target else 'NOT met'})"
    )
    for label, a in attribution.items():
        print(
            f"  {label:9s} per write: {a['statements']:.1f} SQL statements + "
            f"{a['commits']:.1f} commit, wall {a['wall_ms']:.3f} ms = db {a['db_ms']:.3f} ms "
            f"(commit {a['commit_ms']:.3f}) + python {a['python_ms']:.3f} ms; "
            f"client CPU {a['client_cpu_ms']:.3f} ms"
        )
    print(
        "  (db = inside cursor.execute/commit: psycopg + round trip + server; python = the rest:"
        " ORM, transaction bookkeeping, hashing, JSON)"
    )
    print("  measured path, statements per write:")
    for stmt in attribution["measured"]["by_statement"]:
        print(f"    {stmt['count']:4.1f} x {stmt['ms']:6.3f} ms  {stmt['sql']}")
    print("  cProfile of the measured path (top by own time):")
    print(profile_text)
    return 0


def _sql_accounting(connection, write, start: int, count: int) -> dict:
    """Count and time every SQL statement and commit of `count` writes (attribution only: the
    wrapper adds a little time of its own, so these writes are not part of the timed figures)."""
    stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    commits = [0, 0.0]

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = stats[common.statement_label(sql)]
            entry[0] += 1
            entry[1] += time.perf_counter() - t0

    original_commit = connection._commit

    def timed_commit():
        t0 = time.perf_counter()
        try:
            return original_commit()
        finally:
            commits[0] += 1
            commits[1] += time.perf_counter() - t0

    connection._commit = timed_commit
    try:
        with connection.execute_wrapper(wrapper):
            t0, cpu0 = time.perf_counter(), time.process_time()
            for i in range(start, start + count):
                write(i)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        del connection._commit
    statements = sum(n for n, _ in stats.values())
    db = sum(t for _, t in stats.values()) + commits[1]
    return {
        "writes": count,
        "wall_ms": round(1000 * wall / count, 3),
        "statements": round(statements / count, 2),
        "commits": round(commits[0] / count, 2),
        "db_ms": round(1000 * db / count, 3),
        "commit_ms": round(1000 * commits[1] / count, 3),
        "python_ms": round(1000 * (wall - db) / count, 3),
        "client_cpu_ms": round(1000 * cpu / count, 3),
        "by_statement": [
            {"sql": label, "count": round(n / count, 2), "ms": round(1000 * t / n, 3)}
            for label, (n, t) in sorted(stats.items(), key=lambda kv: -kv[1][1])
        ],
    }


def _cprofile(write, start: int, count: int) -> tuple[str, list[dict]]:
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(start, start + count):
        write(i)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(15)
    text = "\n".join(
        "    " + line.replace(sysconfig.get_paths()["purelib"] + "/", "")
        for line in stream.getvalue().splitlines()
        if line.strip()
    )
    top = []
    for (filename, lineno, func), (_cc, nc, tt, ct, _) in sorted(
        stats.stats.items(), key=lambda kv: -kv[1][2]
    )[:15]:
        top.append(
            {
                "function": f"{Path(filename).name}:{lineno}({func})",
                "calls": nc,
                "tottime_ms_per_write": round(1000 * tt / count, 4),
                "cumtime_ms_per_write": round(1000 * ct / count, 4),
            }
        )
    return text, top


if __name__ == "__main__":
    sys.exit(main())
