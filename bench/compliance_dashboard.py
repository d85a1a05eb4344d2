"""The compliance dashboard (/admin/compliance/) with 1,000,000 checks and a year of trends:
server time and query count, against the same page on an empty tenant (same run).

Data (bench/_compliance_data.py, set-based SQL as the table owner, then VACUUM ANALYZE): one
tenant with 500 pull requests, 2,000 runs over 90 days, 1,000,000 check results, ~58,000
violations (~47,000 open), overrides in every state, 25 rule check states and 25 rules x 365
days of RuleTrend rows. A second tenant has nothing at all (the baseline).

In-process, production settings (DEBUG off, collected static files, the least-privilege role
opsportal_app, so RLS is in force): Django's test Client, logged in (force_login) as a
superuser who is tenant_admin of both tenants, one client per tenant (the session's active
tenant). "Server time" is the time of `client.get("/admin/compliance/")`: the whole middleware
stack, session and auth, the dashboard's queries, the SVG charts and the template. After
WARMUP requests each, REQUESTS requests per tenant, alternating between the two, so background
load hits both alike; median and p95. Queries counted with CaptureQueriesContext on one request
per tenant (they must be equal: the count must not grow with the data).

Diagnostics: time per SQL statement of the full tenant's page, the SQL share of the request,
and EXPLAIN (ANALYZE, BUFFERS) of the dashboard's heaviest statements under RLS.

Results: bench/results/compliance_dashboard.json. Exits non-zero only if setup fails.
Env: BENCH_REQUESTS (30), BENCH_WARMUP (5), BENCH_CHECK_ROWS (1000000).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _compliance_data as data

NAME = "compliance_dashboard"
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "30"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "5"))
CHECK_ROWS = int(os.environ.get("BENCH_CHECK_ROWS", "1000000"))
TARGET_MS = 150.0
TARGET_QUERIES = 15
PATH = "/admin/compliance/"


def make_client(user, tenant):
    from django.test import Client

    from apps.tenancy.selectors import SESSION_KEY

    client = Client(HTTP_HOST=data.HOST)
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = tenant.pk
    session.save()
    return client


def get(client) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    response = client.get(PATH)
    elapsed = time.perf_counter() - t0
    return elapsed, response.status_code, response.content


def capture(client) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        response = client.get(PATH)
        elapsed = time.perf_counter() - t0
    statements = [
        {"ms": round(1000 * float(q["time"]), 2), "sql": " ".join(q["sql"].split())[:200]}
        for q in queries.captured_queries
    ]
    scope_switches = sum(1 for s in statements if "set_config('opsportal." in s["sql"])
    return {
        "status": response.status_code,
        "queries": len(statements),
        "queries_without_rls_scope_switches": len(statements) - scope_switches,
        "request_ms": round(1000 * elapsed, 1),
        "sql_ms": round(sum(s["ms"] for s in statements), 1),
        "statements": sorted(statements, key=lambda s: -s["ms"]),
        "html_bytes": len(response.content),
    }


def stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * common.percentile(ordered, 95), 1),
        "min_ms": round(1000 * ordered[0], 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def explains(tenant_id: int) -> dict:
    return {
        "violations table (open, newest 50, with pull request)": data.explain(
            """
            SELECT v.*, pr.repository, pr.number FROM compliance_violation v
            JOIN compliance_pullrequest pr ON pr.id = v.pull_request_id
            WHERE v.tenant_id = %s AND v.status = 'open'
            ORDER BY v.last_seen_at DESC LIMIT 50
            """,
            [tenant_id],
            tenant_id=tenant_id,
        ),
        "rule tiles: open counts by rule and severity": data.explain(
            """
            SELECT rule_id, severity, count(id) FROM compliance_violation
            WHERE tenant_id = %s AND status = 'open' GROUP BY 1, 2
            """,
            [tenant_id],
            tenant_id=tenant_id,
        ),
        "trend series: 90 days summed over the rules": data.explain(
            """
            SELECT day, sum(evaluated), sum(passing), sum(violations) FROM compliance_ruletrend
            WHERE tenant_id = %s AND day >= current_date - 89 AND day <= current_date
            GROUP BY day ORDER BY day
            """,
            [tenant_id],
            tenant_id=tenant_id,
        ),
    }


def main() -> int:
    started_all = time.perf_counter()
    common.log(f"{NAME}: {PATH} with {CHECK_ROWS:,} checks and a year of trends vs empty tenant")
    machine = common.machine()
    common.setup_database()
    env = common.production_env(common.APP_URL)
    redis_env, redis_client = data.redis_setup()
    env.update(redis_env)
    data.collectstatic(env)
    os.environ.update(redis_env)
    common.configure_django()
    from django.contrib.auth import get_user_model

    from apps.tenancy.rls import all_tenants_context
    from apps.tenancy.services import add_member

    full, _ = data.create_tenant_with_token("bench-dashboard")
    empty, _ = data.create_tenant_with_token("bench-dashboard-empty")
    with all_tenants_context():
        user = get_user_model().objects.create_superuser(
            "bench-admin", "bench-admin@example.com", "bench-only-password-1234"
        )
        for tenant in (full, empty):
            add_member(tenant=tenant, user=user, role="tenant_admin")
    common.log(f"generating history ({CHECK_ROWS:,} checks, 365 days of trends) as the owner")
    t0 = time.perf_counter()
    history = data.generate_history(
        full.pk,
        results_total=CHECK_ROWS,
        runs=max(1, CHECK_ROWS // 500),
        trend_days=365,
        time_zone=full.time_zone,
    )
    history["seconds"] = round(time.perf_counter() - t0, 1)
    common.log(f"  {history['counts']} in {history['seconds']} s")

    clients = {"full": make_client(user, full), "empty": make_client(user, empty)}
    times: dict[str, list[float]] = {"full": [], "empty": []}
    try:
        for label, client in clients.items():
            for _ in range(WARMUP):
                _elapsed, status, content = get(client)
                if status != 200:
                    raise RuntimeError(f"{label}: HTTP {status}: {content[:300]!r}")
        for i in range(REQUESTS):
            order = ("full", "empty") if i % 2 == 0 else ("empty", "full")
            for label in order:
                elapsed, status, _content = get(clients[label])
                if status != 200:
                    raise RuntimeError(f"{label}: HTTP {status}")
                times[label].append(elapsed)
        counted = {label: capture(client) for label, client in clients.items()}
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(f"failed: {exc}".splitlines()[0])
    finally:
        data.flush_redis(redis_client)
    if b"compliance-tiles" not in _content_of(clients["full"]):
        sys.exit("failed: the dashboard did not render its rule tiles")
    try:
        plans = explains(full.pk)
    except Exception as exc:  # diagnostics only
        plans = {"error": repr(exc)}

    full_s, empty_s = stats(times["full"]), stats(times["empty"])
    ratio = full_s["median_ms"] / empty_s["median_ms"]
    q_full, q_empty = counted["full"]["queries"], counted["empty"]["queries"]
    result = {
        "description": f"GET {PATH} (superuser, tenant_admin of the tenant) in-process with "
        f"Django's test Client: {history['counts']['check_results']:,} checks and "
        f"{history['counts']['rule_trends']:,} trend rows vs an empty tenant, same run",
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "data": history,
        "requests_per_tenant": REQUESTS,
        "warmup_per_tenant": WARMUP,
        "full_tenant": full_s,
        "empty_tenant": empty_s,
        "ratio_full_to_empty_median": round(ratio, 2),
        "queries": {"full": q_full, "empty": q_empty, "equal": q_full == q_empty},
        "targets": {
            "server_time_ms": TARGET_MS,
            "median_met": full_s["median_ms"] <= TARGET_MS,
            "p95_met": full_s["p95_ms"] <= TARGET_MS,
            "max_queries": TARGET_QUERIES,
            "queries_met": q_full <= TARGET_QUERIES and q_full == q_empty,
        },
        "counted_request": counted,
        "explain": plans,
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    result["target_met"] = result["targets"]["median_met"] and result["targets"]["queries_met"]
    common.write_result(NAME, result)
    print_report(result)
    return 0


def _content_of(client) -> bytes:
    return client.get(PATH).content


def print_report(r: dict) -> None:
    f, e, t, q = r["full_tenant"], r["empty_tenant"], r["targets"], r["queries"]
    print()
    print(
        f"{NAME} ({r['data']['counts']['check_results']:,} checks, "
        f"{r['data']['counts']['violations_open']:,} open violations, "
        f"{r['data']['counts']['rule_trends']:,} trend rows; {r['requests_per_tenant']} requests "
        f"per tenant after {r['warmup_per_tenant']} warm-up; {r['machine']['cpus']} CPUs)"
    )
    print(
        f"  full tenant:  median {f['median_ms']:.1f} ms  p95 {f['p95_ms']:.1f} ms  "
        f"(min {f['min_ms']:.1f}, max {f['max_ms']:.1f})"
    )
    print(
        f"  empty tenant: median {e['median_ms']:.1f} ms  p95 {e['p95_ms']:.1f} ms  "
        f"(min {e['min_ms']:.1f}, max {e['max_ms']:.1f})"
    )
    print(f"  ratio full/empty (median): {r['ratio_full_to_empty_median']:.2f}x")
    print(
        f"  server time: {'target met' if t['median_met'] else 'target NOT met'} on the median "
        f"(<= {t['server_time_ms']:g} ms), p95 {'within' if t['p95_met'] else 'over'} it"
    )
    print(
        f"  queries: full {q['full']}, empty {q['empty']} ("
        f"{'equal' if q['equal'] else 'NOT equal'}; "
        f"{'target met' if t['queries_met'] else 'target NOT met'}: <= {t['max_queries']} and "
        "equal)"
    )
    c = r["counted_request"]["full"]
    print(
        f"  counted request, full tenant: {c['request_ms']} ms, {c['sql_ms']} ms of it in SQL "
        f"({c['queries']} statements, {c['queries_without_rls_scope_switches']} without the RLS "
        f"scope switches); slowest statements:"
    )
    for s in c["statements"][:5]:
        print(f"    {s['ms']:7.2f} ms  {s['sql'][:110]}")
    print(f"  data generated in {r['data']['seconds']} s; bench wall time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
