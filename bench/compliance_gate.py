"""The gate read with 1,000,000 historical check rows: latency at 8 clients, throughput at 32
clients as a share of the portal's own /healthz (same server, same client, same run).

Data (bench/_compliance_data.py, written with set-based SQL as the table owner, then VACUUM
ANALYZE): one tenant, 500 pull requests over 20 repositories, 2,000 runs spread over 90 days,
1,000,000 check results (~19 % violations, 25 rules, 200 files), ~58,000 violations derived from
them as ingestion would (~47,000 open, the rest resolved), 40 approved unexpired overrides plus
pending, rejected and expired ones, rule check states and a year of daily trends.

Server: the portal under gunicorn with the project's gunicorn.conf.py, pinned to
`--worker-class gthread --workers BENCH_WORKERS --threads BENCH_THREADS` (default 4 x 4; gthread
keeps connections alive, sync workers close each one), production mode, the least-privilege
role opsportal_app (RLS in force), Redis as cache (throttle) when reachable, THROTTLE_RATE
raised so the load is not throttled (the throttle still runs on every request).

Load: wrk when installed (keep-alive, -t2), else a Python asyncio keep-alive client; the same
client for both targets. The gate requests are `GET /api/v1/compliance/gate?repository=&pr=` for
a pull request drawn at random per request among the 500 that exist, with a CI token.
- 8 clients: ROUNDS rounds of SECONDS s on the gate; p95 (request-weighted over the rounds)
  against the target (<= 25 ms);
- 8 clients on /api/v1/tenancy/me, ROUNDS rounds: the smallest authenticated request, as the
  floor under the gate on this server, client and machine (information);
- 32 clients: ROUNDS rounds alternating gate and /healthz (gate, healthz, healthz, gate, ...);
  gate throughput as a share of /healthz throughput (information; no target given).
The load generator shares the 2 CPUs with gunicorn and PostgreSQL.

Diagnostics: the gate in-process (Django test client, no HTTP): server time per request and its
SQL statements (CaptureQueriesContext), and EXPLAIN (ANALYZE, BUFFERS) of its violation
queries for one pull request, as the app role under RLS.

Results: bench/results/compliance_gate.json. Exits non-zero only if setup fails.
Env: BENCH_WORKERS (4), BENCH_THREADS (4), BENCH_ROUNDS (3), BENCH_SECONDS (4),
BENCH_CHECK_ROWS (1000000), BENCH_CLIENT (wrk | python).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _compliance_data as data

NAME = "compliance_gate"
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
CHECK_ROWS = int(os.environ.get("BENCH_CHECK_ROWS", "1000000"))
TARGET_P95_MS = 25.0
GATE = "/api/v1/compliance/gate"
HEALTHZ = "/healthz"
# The smallest authenticated API request (token, throttle, tenant scope, a 200-byte body): the
# floor under any gate poll on the same server, client and machine.
WHOAMI = "/api/v1/tenancy/me"


def gate_path(repository: str, number: int) -> str:
    return f"{GATE}?{urlencode({'repository': repository, 'pr': number})}"


def in_process(token: str, keys: list[tuple[str, int]], tenant_id: int) -> dict:
    """Server time and SQL of the gate through Django's test client (no HTTP)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST=data.HOST)
    rng = random.Random(5)
    for _ in range(30):
        client.get(gate_path(*rng.choice(keys)))
    times = []
    for _ in range(200):
        path = gate_path(*rng.choice(keys))
        t0 = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"gate in-process: HTTP {response.status_code}")
    repository, number = keys[len(keys) // 2]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(gate_path(repository, number))
    body = response.json()
    ordered = sorted(times)
    statements = [
        {"ms": round(1000 * float(q["time"]), 2), "sql": " ".join(q["sql"].split())[:160]}
        for q in queries.captured_queries
    ]
    pull_request_id = _pull_request_id(tenant_id, repository, number)
    explains = {
        "open violations grouped by rule, severity, override coverage": data.explain(
            """
            SELECT v.rule_id, v.severity, EXISTS(
                SELECT 1 FROM overrides_override o WHERE o.expires_at > now()
                AND o.fingerprint = v.fingerprint AND o.pull_request_id = v.pull_request_id
                AND o.state = 'APPROVED') AS covered, count(v.id)
            FROM compliance_violation v WHERE v.pull_request_id = %s AND v.status = 'open'
            GROUP BY 1, 2, 3
            """,
            [pull_request_id],
            tenant_id=tenant_id,
        ),
        "open violations listed (gate_body)": data.explain(
            """
            SELECT * FROM compliance_violation v WHERE v.pull_request_id = %s
            AND v.status = 'open' ORDER BY severity, rule_id, file_path, id LIMIT 200
            """,
            [pull_request_id],
            tenant_id=tenant_id,
        ),
    }
    return {
        "requests": len(times),
        "server_ms": {
            "p50": round(1000 * statistics.median(ordered), 2),
            "p95": round(1000 * common.percentile(ordered, 95), 2),
            "mean": round(1000 * statistics.fmean(ordered), 2),
        },
        "queries_per_request": len(statements),
        "sql_ms_per_request": round(sum(s["ms"] for s in statements), 2),
        "statements": statements,
        "sample": {
            "pull_request": f"{repository}#{number}",
            "decision": body.get("decision"),
            "open": body.get("counts", {}).get("open"),
            "open_violations_listed": len(body.get("open_violations", [])),
            "response_bytes": len(response.content),
        },
        "explain": explains,
    }


def warm_answers(tenant) -> dict:
    """The write-through that ingestion does at commit (`services.warm_gate_after_commit`).

    The history here is written with SQL, so no run ever committed through the portal and no
    answer is cached; without this the rounds would measure the first poll after a cache
    eviction, not a pipeline polling after its run. The time per answer computed is reported:
    it is what a poll costs when its answer is not cached.
    """
    from apps.compliance.models import PullRequest
    from apps.compliance.services import warm_gate
    from apps.tenancy.rls import tenant_context

    t0 = time.perf_counter()
    with tenant_context(tenant):
        ids = list(PullRequest.objects.values_list("id", flat=True))
        for pull_request_id in ids:
            warm_gate(pull_request_id)
    seconds = time.perf_counter() - t0
    return {
        "pull_requests": len(ids),
        "seconds": round(seconds, 2),
        "ms_per_answer_computed": round(1000 * seconds / max(1, len(ids)), 2),
    }


def _pull_request_id(tenant_id: int, repository: str, number: int) -> int:
    with data.owner_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM compliance_pullrequest WHERE tenant_id = %s AND repository = %s"
            " AND number = %s",
            [tenant_id, repository, number],
        )
        return cur.fetchone()[0]


def main() -> int:
    started_all = time.perf_counter()
    common.log(
        f"{NAME}: gate with {CHECK_ROWS:,} check rows; 8 clients (p95), 32 clients vs /healthz"
    )
    machine = common.machine()
    redis_env, redis_client = data.prepare_portal(needs_gunicorn=True)
    tenant, token = data.create_tenant_with_token("bench-gate")
    common.log(f"generating history ({CHECK_ROWS:,} check rows) as the owner")
    t0 = time.perf_counter()
    history = data.generate_history(
        tenant.pk,
        results_total=CHECK_ROWS,
        runs=max(1, CHECK_ROWS // 500),
        time_zone=tenant.time_zone,
    )
    history["seconds"] = round(time.perf_counter() - t0, 1)
    common.log(f"  {history['counts']} in {history['seconds']} s")
    keys = data.pull_request_keys(tenant.pk)
    paths = [gate_path(r, n) for r, n in keys]
    common.log("caching each pull request's answer, as the commit of its last run does")
    warm = warm_answers(tenant)
    common.log(f"  {warm['pull_requests']} answers in {warm['seconds']} s")
    headers = {"Authorization": f"Bearer {token}"}

    env = common.production_env(common.APP_URL)
    env.update(redis_env)
    env["THROTTLE_RATE"] = os.environ["THROTTLE_RATE"]
    server = data.GunicornServer("compliance-gate", env, workers=WORKERS, threads=THREADS)
    client = data.choose_client()
    common.log(f"load generator: {client.name} ({client.version}); {server.description}")
    runs: dict[str, list[dict]] = {"gate_8": [], "whoami_8": [], "gate_32": [], "healthz_32": []}
    try:
        server.start()
        base = server.url("")

        def measure(label: str, target_paths: list[str], connections: int) -> None:
            cpu0 = server.cpu_seconds()
            result = client.run(
                base, target_paths, headers, connections=connections, seconds=SECONDS
            )
            result["server_cpu_s"] = server.cpu_seconds() - cpu0
            runs[label].append(result)
            common.log(
                f"  {label:10s} {result['requests'] / result['seconds']:8.1f} req/s  "
                f"p50 {result['p50_ms']:6.2f} ms  p95 {result['p95_ms']:6.2f} ms  "
                f"errors {result['errors']}"
            )

        # Warm-up: every worker thread connects and imports.
        client.run(base, paths, headers, connections=32, seconds=3)
        client.run(base, [HEALTHZ], {}, connections=32, seconds=1)
        for _ in range(ROUNDS):
            measure("gate_8", paths, 8)
        for _ in range(ROUNDS):
            measure("whoami_8", [WHOAMI], 8)
        for round_no in range(ROUNDS):
            order = (("gate_32", paths), ("healthz_32", [HEALTHZ]))
            if round_no % 2:
                order = order[::-1]
            for label, target_paths in order:
                measure(label, target_paths, 32)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(f"setup failed: {exc}".splitlines()[0])
    finally:
        server.stop()
        client.close()
        common.log("gunicorn stopped")

    common.log("in-process diagnostics: server time, SQL, EXPLAIN")
    try:
        diagnostics = in_process(token, keys, tenant.pk)
    except Exception as exc:  # diagnostics only; the measurement above stands
        diagnostics = {"error": repr(exc)}
    data.flush_redis(redis_client)

    gate_8 = data.aggregate_load(runs["gate_8"])
    whoami_8 = data.aggregate_load(runs["whoami_8"])
    gate_32 = data.aggregate_load(runs["gate_32"])
    healthz_32 = data.aggregate_load(runs["healthz_32"])
    share = gate_32["requests_per_s"] / healthz_32["requests_per_s"]
    p95 = gate_8["latency_ms"]["p95"]
    result = {
        "description": "GET /api/v1/compliance/gate for random existing pull requests with "
        f"{history['counts']['check_results']:,} check rows in the tenant: 8 clients (latency) "
        "and 32 clients (throughput vs /healthz on the same server), same run",
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "data": history,
        "answers_cached_before_load": warm,
        "server": {"description": server.description, "command": " ".join(server.cmd[1:])},
        "client": {"name": client.name, "version": client.version, "keep_alive": True},
        "cache": redis_env.get("REDIS_URL", "file cache"),
        "throttle_rate": os.environ["THROTTLE_RATE"],
        "seconds_per_round": SECONDS,
        "rounds": ROUNDS,
        "gate_8_clients": gate_8,
        "whoami_8_clients": whoami_8,
        "gate_32_clients": gate_32,
        "healthz_32_clients": healthz_32,
        "gate_share_of_healthz_32": round(share, 3),
        "target_p95_ms_8_clients": TARGET_P95_MS,
        "target_met": p95 <= TARGET_P95_MS and gate_8["errors"] == 0,
        "in_process": diagnostics,
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)
    print_report(result)
    return 0


def print_report(r: dict) -> None:
    g8, g32, h32 = r["gate_8_clients"], r["gate_32_clients"], r["healthz_32_clients"]
    print()
    print(
        f"{NAME} ({r['data']['counts']['check_results']:,} check rows, "
        f"{r['data']['counts']['violations_open']:,} open violations, "
        f"{r['data']['counts']['pull_requests']} pull requests; {r['server']['description']}; "
        f"{r['client']['name']}; {r['machine']['cpus']} CPUs)"
    )
    print(
        f"  gate, 8 clients:   {g8['requests_per_s']:8.1f} req/s  p50 "
        f"{g8['latency_ms']['p50']:.2f} ms  p95 {g8['latency_ms']['p95']:.2f} ms  p99 "
        f"{g8['latency_ms']['p99']:.2f} ms  ({g8['errors']} errors; "
        f"{'target met' if r['target_met'] else 'target NOT met'}: p95 <= "
        f"{r['target_p95_ms_8_clients']:g} ms)"
    )
    w8 = r["whoami_8_clients"]
    print(
        f"  {WHOAMI}, 8 clients (the floor: the smallest authenticated request): "
        f"{w8['requests_per_s']:.1f} req/s  p50 {w8['latency_ms']['p50']:.2f} ms  p95 "
        f"{w8['latency_ms']['p95']:.2f} ms  server CPU {w8['server_cpu_ms_per_request']} ms/req"
    )
    for label, s in (("gate, 32 clients:  ", g32), ("/healthz, 32:      ", h32)):
        print(
            f"  {label}{s['requests_per_s']:8.1f} req/s  p50 {s['latency_ms']['p50']:.2f} ms  "
            f"p95 {s['latency_ms']['p95']:.2f} ms  server CPU {s['server_cpu_ms_per_request']} "
            f"ms/req  ({s['errors']} errors)"
        )
    print(
        f"  gate throughput / /healthz throughput at 32 clients: {r['gate_share_of_healthz_32']:.1%}"
    )
    d = r["in_process"]
    if "error" in d:
        print(f"  in-process diagnostics failed: {d['error']}")
    else:
        print(
            f"  in-process (no HTTP): p50 {d['server_ms']['p50']} ms, p95 {d['server_ms']['p95']}"
            f" ms; {d['queries_per_request']} SQL statements, {d['sql_ms_per_request']} ms in the "
            f"driver; sample {d['sample']}"
        )
    w = r["answers_cached_before_load"]
    print(
        f"  answers cached before the load (write-through): {w['pull_requests']} in "
        f"{w['seconds']} s, {w['ms_per_answer_computed']} ms per answer computed (a poll's cost "
        "when its answer is not cached)"
    )
    print(f"  data generated in {r['data']['seconds']} s; bench wall time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
