"""The daily SLO report (`apps.slo.reports.build` and `generate`) for 50 services with 2 SLOs
each, against the same report for 5 services (same run, same data shape per service).

Data (bench/_slo_data.py, written directly as the table owner, then VACUUM ANALYZE): tenant A
with 50 services, tenant B with 5; each service an availability (99.9 %) and a latency (300 ms,
99 %) SLO. ServiceHour rows for every hour of the last 8 local days (the report's day included:
yesterday in the tenant's zone, America/Edmonton): ~3,000-33,000 requests a minute with a daily
shape, 11 cumulative latency buckets, 5 counters (`{"sum", "n", "last"}`, two reported as
"last" and "mean", a report ratio), 20 error samples. SLIPoint rows as ingestion leaves them:
minute points for 8 days, hour and UTC-day points for 31 days.

Measured in-process (production settings, the least-privilege role opsportal_app in the
tenant's RLS scope, as `run_due` runs it):
- `build(tenant, day)`: the report's content (one ServiceHour read, one window-sum query,
  per-service aggregation and quantiles): REPS (5) each for A and B, alternating; median;
- `generate(tenant, day)` when the report is new (build, SHA-256, evidence artifact with its
  audit event, the DailyReport row): GEN_REPS (3) each, the report deleted (as the owner) first;
- `generate` again with nothing changed (build and hash, nothing stored): GEN_REPS each.
Target: <= 5 s for tenant A (build and new generate, medians).

Baseline: the same report for tenant B (5 services, same shape per service): the ratio A / B
shows how the cost scales with the number of services (10x = linear; less means fixed costs).
The report's input read alone (the ServiceHour rows of the day and the window sums, no Python
aggregation) is timed too: the floor any implementation pays (information).

Diagnostics: a breakdown of one build for A (per phase and SQL statement), the renderers the
sender uses (email HTML and text, Slack) on A's content (information), EXPLAIN (ANALYZE, BUFFERS)
of the report's two reads as the app role.

Results: bench/results/slo_report.json. Exits non-zero only if setup or a build fails.
Env: BENCH_SERVICES (50), BENCH_SMALL_SERVICES (5), BENCH_REPS (5), BENCH_GEN_REPS (3).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _slo_data as data

NAME = "slo_report"
SERVICES = int(os.environ.get("BENCH_SERVICES", "50"))
SMALL_SERVICES = int(os.environ.get("BENCH_SMALL_SERVICES", "5"))
REPS = int(os.environ.get("BENCH_REPS", "5"))
GEN_REPS = int(os.environ.get("BENCH_GEN_REPS", "3"))
SLOS_PER_SERVICE = 2
HISTORY_DAYS = 8
TARGET_SECONDS = 5.0
HOUR_COLUMNS = (
    "tenant_id",
    "service_id",
    "hour",
    "requests",
    "errors",
    "buckets",
    "counters",
    "error_samples",
)
BREAKDOWN_TARGETS = (
    ("apps.slo.reports", "build", "reports.build (all below)"),
    ("apps.slo.selectors", "window_sums", "  selectors.window_sums (one query)"),
    ("apps.slo.reports", "_service_entry", "  _service_entry (per service)"),
    ("apps.slo.quantiles", "merge", "    quantiles.merge"),
    ("apps.slo.quantiles", "quantile", "    quantiles.quantile"),
)


def write_service_hours(tenant_id: int, service_ids: list[int], first, last) -> int:
    """Every hour in [first, last) for every service, COPYed as the owner."""
    hours = []
    hour = first
    while hour < last:
        hours.append(hour)
        hour += timedelta(hours=1)
    rows = data.service_hour_rows(tenant_id, service_ids, hours, seed=tenant_id)
    data.copy_rows("slo_servicehour", HOUR_COLUMNS, data.copy_text(rows))
    return len(rows)


def timed(func, *args, **kwargs):
    t0 = time.perf_counter()
    value = func(*args, **kwargs)
    return time.perf_counter() - t0, value


def delete_report(tenant_id: int) -> None:
    with data.owner_connection() as conn:
        conn.execute("DELETE FROM slo_dailyreport WHERE tenant_id = %s", [tenant_id])
        conn.commit()


def read_floor(tenant, day) -> float:
    """The report's input alone: the day's ServiceHour rows (same columns) and the same window
    sums, no aggregation."""
    from zoneinfo import ZoneInfo

    from apps.slo import reports, selectors
    from apps.slo.models import SLO, ServiceHour
    from apps.tenancy import rls

    start, end = reports.day_bounds(day, ZoneInfo(tenant.time_zone))
    with rls.tenant_context(tenant):
        t0 = time.perf_counter()
        list(
            ServiceHour.objects.for_tenant(tenant)
            .filter(hour__gte=start, hour__lt=end)
            .values_list(
                "service_id", "hour", "requests", "errors", "buckets", "counters", "error_samples"
            )
        )
        slos = list(
            SLO.objects.for_tenant(tenant).filter(enabled=True).values_list("pk", flat=True)
        )
        selectors.window_sums(
            slos, {"day": (start, end), "budget30": selectors.budget_window(30, end)}
        )
        return time.perf_counter() - t0


def check_content(content: dict, services: int, label: str) -> None:
    got = len(content.get("services", []))
    slos = sum(len(s["slos"]) for s in content.get("services", []))
    hours = {len(s["hourly"]) for s in content.get("services", [])}
    with_traffic = sum(1 for s in content["services"] if s["requests"])
    if got != services or slos != services * SLOS_PER_SERVICE or with_traffic != services:
        raise RuntimeError(
            f"{label}: {got} services ({with_traffic} with traffic), {slos} SLOs, hours {hours}"
        )


# ---- main ---------------------------------------------------------------------------------------------
def main() -> int:
    started_all = time.perf_counter()
    common.log(f"{NAME}: daily report for {SERVICES} services vs {SMALL_SERVICES}")
    machine = common.machine()
    redis_env, redis_client = data.prepare()
    from zoneinfo import ZoneInfo

    from django.db import connection
    from django.utils import timezone

    from apps.slo import report_render, reports
    from apps.tenancy import rls

    now = timezone.now()
    tenants = {}
    setup_s = {}
    for key, count in (("A", SERVICES), ("B", SMALL_SERVICES)):
        tenant = data.create_tenant(f"bench-slo-report-{count}")
        zone = ZoneInfo(tenant.time_zone)
        day = now.astimezone(zone).date() - timedelta(days=1)
        services, slos = data.create_services(
            tenant, count, SLOS_PER_SERVICE, prefix="svc", last_data_at=now
        )
        first = reports.day_bounds(day - timedelta(days=HISTORY_DAYS - 1), zone)[0]
        last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        t0 = time.perf_counter()
        hours = write_service_hours(tenant.pk, [s.pk for s in services], first, last)
        setup_s[f"{key}: service hours"] = round(time.perf_counter() - t0, 2)
        common.log(
            f"  tenant {key}: {hours:,} ServiceHour rows ({setup_s[f'{key}: service hours']} s)"
        )
        points = data.generate_sli_points(tenant.pk, now)
        tenants[key] = {
            "tenant": tenant,
            "day": day,
            "services": count,
            "slos": len(slos),
            "service_hours": hours,
            "sli_points": points["rows"],
        }
    data.analyze("slo_servicehour", "slo_service", "slo_slo", "slo_dailyreport")
    with connection.cursor() as cur:
        cur.execute("SELECT current_user, version()")
        db_user, db_version = cur.fetchone()

    build_s = {"A": [], "B": []}
    generate_new_s = {"A": [], "B": []}
    generate_same_s = {"A": [], "B": []}
    floor_s = {"A": [], "B": []}
    contents = {}
    try:
        for key, t in tenants.items():  # warm-up, not counted
            with rls.tenant_context(t["tenant"]):
                contents[key] = reports.build(t["tenant"], t["day"])
            check_content(contents[key], t["services"], f"tenant {key}")
            read_floor(t["tenant"], t["day"])
        for _ in range(REPS):
            for key, t in tenants.items():
                with rls.tenant_context(t["tenant"]):
                    wall, content = timed(reports.build, t["tenant"], t["day"])
                build_s[key].append(wall)
                floor_s[key].append(read_floor(t["tenant"], t["day"]))
            common.log(
                f"  build: A {1000 * build_s['A'][-1]:6.0f} ms, B {1000 * build_s['B'][-1]:5.0f}"
                f" ms   (input read alone: A {1000 * floor_s['A'][-1]:4.0f} ms, B "
                f"{1000 * floor_s['B'][-1]:4.0f} ms)"
            )
        for _ in range(GEN_REPS):
            for key, t in tenants.items():
                delete_report(t["tenant"].pk)
                with rls.tenant_context(t["tenant"]):
                    wall, (_report, changed) = timed(
                        reports.generate, t["tenant"], t["day"], now=now
                    )
                if not changed:
                    raise RuntimeError(f"tenant {key}: a new report was not stored")
                generate_new_s[key].append(wall)
            for key, t in tenants.items():
                with rls.tenant_context(t["tenant"]):
                    wall, (_report, changed) = timed(
                        reports.generate, t["tenant"], t["day"], now=now
                    )
                if changed:
                    raise RuntimeError(f"tenant {key}: an unchanged rebuild stored a new report")
                generate_same_s[key].append(wall)
            common.log(
                f"  generate (new): A {1000 * generate_new_s['A'][-1]:6.0f} ms, B "
                f"{1000 * generate_new_s['B'][-1]:5.0f} ms; unchanged: A "
                f"{1000 * generate_same_s['A'][-1]:6.0f} ms, B "
                f"{1000 * generate_same_s['B'][-1]:5.0f} ms"
            )

        # Diagnostics: breakdown of one build for A, the renderers, the plans of the reads.
        a = tenants["A"]
        breakdown = data.Breakdown(BREAKDOWN_TARGETS)
        breakdown.keep_statements = True
        breakdown.install()
        try:
            with rls.tenant_context(a["tenant"]):
                content = reports.build(a["tenant"], a["day"])
        finally:
            breakdown.uninstall()
        build_breakdown = breakdown.summary()
        rendered = {
            **content,
            "url": "https://portal.example/report",
            "generated_at": now.isoformat(),
        }
        render_s = {}
        for label, func in (
            ("email_html", report_render.email_html),
            ("email_text", report_render.email_text),
            ("slack_summary", report_render.slack_summary),
        ):
            render_s[label] = round(min(timed(func, rendered)[0] for _ in range(3)), 4)
        plans = {}
        for sql, params in breakdown.statements:
            if "slo_servicehour" in sql or "slo_slipoint" in sql:
                table = "slo_servicehour" if "slo_servicehour" in sql else "slo_slipoint"
                plans[table] = data.explain(sql, params, tenant_id=a["tenant"].pk)
    except Exception as exc:
        print(exc, file=sys.stderr)
        data.flush_redis(redis_client)
        sys.exit(f"failed: {exc!r}".splitlines()[0])
    data.flush_redis(redis_client)

    def med(series: dict, key: str) -> float:
        return statistics.median(series[key])

    worst_a = max(med(build_s, "A"), med(generate_new_s, "A"))
    result = {
        "description": f"apps.slo.reports.build/generate for {SERVICES} services x "
        f"{SLOS_PER_SERVICE} SLOs (tenant A) vs {SMALL_SERVICES} services (tenant B), "
        "in-process as the app role in the tenant's RLS scope, same run",
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "database": {"name": common.BENCH_DB, "user": db_user, "server": db_version},
        "cache_and_broker": redis_env.get("REDIS_URL", "file cache / file broker"),
        "data": {
            key: {k: (str(v) if k == "day" else v) for k, v in t.items() if k != "tenant"}
            for key, t in tenants.items()
        },
        "report_hours": contents["A"]["hours"],
        "report_bytes_A": len(reports.json.dumps(contents["A"])),
        "setup_s": setup_s,
        "build": {key: data.summarize(build_s[key]) for key in tenants},
        "generate_new": {key: data.summarize(generate_new_s[key]) for key in tenants},
        "generate_unchanged": {key: data.summarize(generate_same_s[key]) for key in tenants},
        "input_read_alone": {key: data.summarize(floor_s[key]) for key in tenants},
        "ratio_A_to_B": {
            "build": round(med(build_s, "A") / med(build_s, "B"), 2),
            "generate_new": round(med(generate_new_s, "A") / med(generate_new_s, "B"), 2),
            "linear_would_be": round(SERVICES / SMALL_SERVICES, 2),
        },
        "share_of_build_in_input_read_A": round(med(floor_s, "A") / med(build_s, "A"), 3),
        "targets": {"report_s": TARGET_SECONDS, "report_met": worst_a <= TARGET_SECONDS},
        "breakdown_build_A": build_breakdown,
        "render_s_A": render_s,
        "explain_A": plans,
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)
    print_report(result)
    return 0


def print_report(r: dict) -> None:
    a, b = r["data"]["A"], r["data"]["B"]
    print()
    print(
        f"{NAME} (A: {a['services']} services, {a['slos']} SLOs; B: {b['services']} services, "
        f"{b['slos']} SLOs; day {a['day']}, {r['report_hours']} hours; "
        f"{r['machine']['cpus']} CPUs)"
    )
    for key, title in (
        ("build", "build"),
        ("generate_new", "generate (new report)"),
        ("generate_unchanged", "generate (unchanged)"),
        ("input_read_alone", "input read alone"),
    ):
        sa, sb = r[key]["A"], r[key]["B"]
        print(
            f"  {title:<22} A median {1000 * sa['median_s']:6.0f} ms (max "
            f"{1000 * sa['max_s']:.0f})   B median {1000 * sb['median_s']:5.0f} ms   A/B "
            f"{sa['median_s'] / sb['median_s']:.1f}x"
        )
    print(
        f"  target <= {r['targets']['report_s']:g} s for {a['services']} services: "
        f"{data.met(r['targets']['report_met'])}; A/B build {r['ratio_A_to_B']['build']:.1f}x "
        f"(linear = {r['ratio_A_to_B']['linear_would_be']:g}x)"
    )
    print("  breakdown of one build for A:")
    data.print_breakdown(r["breakdown_build_A"])
    print(
        "  renderers on A's content: "
        + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in r["render_s_A"].items())
    )
    print(f"  bench wall time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
