"""One burn-rate evaluation cycle (`apps.slo.alerting.evaluate`) over 500 SLOs with 30 days of
SLI data, for 30-day and 7-day SLO windows, against a naive per-SLO, per-window evaluation.

Data (bench/_slo_data.py, set-based SQL as the table owner, then VACUUM ANALYZE): one tenant,
100 services x 5 SLOs (availability 99.9 / 99.95 %, latency 300 ms 99 % and 1,000 ms 99.9 %, a
ratio 99.5 %), SLIPoint rows exactly as ingestion leaves them: minute points for the last 8 days
(raw retention), hour and UTC-day points for 31 days, ~6 million rows. Traffic 200-2,000 events
a minute per SLO with a daily shape, healthy error ratios 0.003-0.009 % (no condition holds for
either window length); 25 SLOs (5 %) burn at 5 % errors for the last 90 minutes, so each cycle
has 25 pages (1h/5m at 50x) and no tickets. An email channel is configured, so a raised page
creates a delivery and a broker message. Services pushed a minute ago (no 'no data' alert).

Measured in-process (production settings, the least-privilege role opsportal_app, RLS in force):
the wall time of `evaluate(now=...)`, everything it does: load SLOs and open alerts, one
window-sum query over every window of every SLO, burn rates, 500 SLOStatus upserts, raising (or
counting again) the pages with their audit events, deliveries and broker messages, the no-data
check. Window length changes only `window_days` (UPDATE as the owner) on the same data, so the
two are compared on identical points; 30 d and 7 d alternate, so background load hits both.
- first cycle: every SLO alert resolved first (UPDATE as the owner), so the cycle raises 25 new
  pages (INSERT, audit, notification) and halts rollouts listening (none): FIRST_REPS (3) each;
- steady state: the pages already firing (counted again, no new notification): STEADY_REPS (5).
Target: <= 2 s per cycle (either kind); the cost must not depend on the window length (ratio
30 d / 7 d, ideally ~1).

Baseline, same run: a naive evaluation of NAIVE_SLOS (20) SLOs spread over the set (burning
ones included), one query per SLO and window summing the finest points stored over the window:
minute points for windows within raw retention (the 7 alert windows, and the 7-day budget
window), hour points for the 30-day budget window (minutes are not kept that long), then the
same burn-rate and budget arithmetic (apps.slo.alerting._firing); no writes. Scaled to 500 SLOs
and compared with the steady-state cycle (which writes). The naive sums are checked equal to the
app's window sums (the rollups tile each window exactly).

Diagnostics: `selectors.window_sums` alone (the one query), a breakdown of one first and one
steady cycle (time per phase and per SQL statement), EXPLAIN (ANALYZE, BUFFERS) of the window-sum
query as the app role.

Results: bench/results/slo_burn.json. Exits non-zero only if setup fails or a cycle raises.
Env: BENCH_SERVICES (100), BENCH_SLOS_PER_SERVICE (5), BENCH_FIRST_REPS (3),
BENCH_STEADY_REPS (5), BENCH_NAIVE_SLOS (20).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _slo_data as data

NAME = "slo_burn"
SERVICES = int(os.environ.get("BENCH_SERVICES", "100"))
SLOS_PER_SERVICE = int(os.environ.get("BENCH_SLOS_PER_SERVICE", "5"))
FIRST_REPS = int(os.environ.get("BENCH_FIRST_REPS", "3"))
STEADY_REPS = int(os.environ.get("BENCH_STEADY_REPS", "5"))
NAIVE_SLOS = int(os.environ.get("BENCH_NAIVE_SLOS", "20"))
TARGET_SECONDS = 2.0
WINDOWS = (30, 7)
BREAKDOWN_TARGETS = (
    ("apps.slo.alerting", "evaluate", "alerting.evaluate (all below)"),
    ("apps.slo.selectors", "window_sums", "  selectors.window_sums (one query)"),
    ("apps.slo.windows", "conditions", "  windows.conditions (per SLO)"),
    ("apps.slo.alerting", "_firing", "  _firing (per SLO)"),
    ("apps.slo.alerting", "_raise", "  _raise (raise_alert, halt rollouts)"),
    ("apps.alerts.services", "notify", "    alerts notify (deliveries)"),
    ("apps.slo.alerting", "_no_data", "  _no_data"),
)


# ---- setup as the owner -------------------------------------------------------------------------------
def set_window(tenant_id: int, days: int) -> None:
    with data.owner_connection() as conn:
        conn.execute("UPDATE slo_slo SET window_days = %s WHERE tenant_id = %s", [days, tenant_id])
        conn.commit()


def resolve_all(tenant_id: int) -> int:
    """Resolve every open SLO alert, so the next cycle raises them afresh."""
    with data.owner_connection() as conn:
        cur = conn.execute(
            "UPDATE alerts_alert SET status = 'resolved', resolved_at = now(),"
            " resolved_by = 'bench' WHERE tenant_id = %s AND source = 'slo'"
            " AND status <> 'resolved'",
            [tenant_id],
        )
        conn.commit()
        return cur.rowcount


# ---- the measured cycle -------------------------------------------------------------------------------
def cycle(now) -> tuple[float, object]:
    from apps.slo import alerting

    t0 = time.perf_counter()
    result = alerting.evaluate(now=now)
    return time.perf_counter() - t0, result


def check(result, expected_pages: int, label: str, problems: list[str]) -> None:
    """The cycle must judge the data as designed; a difference is reported, not fatal."""
    if result.firing != {"page": expected_pages, "ticket": 0} or result.no_data:
        problems.append(
            f"{label}: firing {result.firing}, raised {result.raised}, no_data {result.no_data} "
            f"(expected {expected_pages} pages, no tickets)"
        )


def named_windows(slos, end) -> dict:
    """The windows evaluate() sums (alert windows of every SLO's conditions + budget windows)."""
    from apps.slo import alerting, selectors, windows

    spans = set()
    for slo in slos:
        spans |= windows.alert_windows(windows.conditions(slo.alerting or {}, slo.window_days))
    named = {alerting._window_name(span): (end - span, end) for span in spans}
    for days in {slo.window_days for slo in slos}:
        named[f"budget{days}"] = selectors.budget_window(days, end)
    return named


def timed_window_sums(slo_ids: list[int], named: dict) -> tuple[float, dict]:
    from apps.slo import selectors
    from apps.tenancy import rls

    with rls.all_tenants_context():
        t0 = time.perf_counter()
        sums = selectors.window_sums(slo_ids, named)
        return time.perf_counter() - t0, sums


def naive(slos, end, minutes_from) -> tuple[float, dict, dict]:
    """(seconds, {slo: {window: (good, total)}}, {slo: firing}) of the naive evaluation."""
    from django.db import connection

    from apps.slo import alerting, selectors, windows
    from apps.tenancy import rls

    sql = (
        "SELECT coalesce(sum(good), 0), coalesce(sum(total), 0) FROM slo_slipoint"
        " WHERE slo_id = %s AND resolution = %s AND start >= %s AND start < %s"
    )
    sums: dict[int, dict] = {}
    firing: dict[int, list] = {}
    with rls.all_tenants_context():
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            for slo in slos:
                conds = windows.conditions(slo.alerting or {}, slo.window_days)
                named = {
                    alerting._window_name(span): (end - span, end)
                    for span in windows.alert_windows(conds)
                }
                named[f"budget{slo.window_days}"] = selectors.budget_window(slo.window_days, end)
                figures = {}
                for name, (start, stop) in named.items():
                    resolution = "m" if start >= minutes_from else "h"
                    cur.execute(sql, [slo.pk, resolution, start, stop])
                    figures[name] = tuple(cur.fetchone())
                good, total = figures[f"budget{slo.window_days}"]
                selectors.Budget(good, total, slo.objective).remaining  # noqa: B018 (the work)
                found = alerting._firing(slo, conds, figures)
                if "page" in found:
                    found.pop("ticket", None)
                sums[slo.pk] = figures
                firing[slo.pk] = sorted(found)
        return time.perf_counter() - t0, sums, firing


def compare_sums(naive_sums: dict, app_sums: dict) -> list[str]:
    mismatches = []
    for slo_id, figures in naive_sums.items():
        for name, (good, total) in figures.items():
            app_good, app_total = app_sums.get(slo_id, {}).get(name, (0.0, 0.0))
            if abs(good - app_good) > 1e-6 * max(1.0, total) or abs(total - app_total) > 1e-6 * max(
                1.0, total
            ):
                mismatches.append(
                    f"slo {slo_id} {name}: naive ({good}, {total}) app ({app_good}, {app_total})"
                )
    return mismatches


def breakdown_cycle(now, *, first: bool, tenant_id: int) -> tuple[dict, tuple | None]:
    if first:
        resolve_all(tenant_id)
    breakdown = data.Breakdown(BREAKDOWN_TARGETS)
    breakdown.keep_statements = True
    breakdown.install()
    try:
        wall, result = cycle(now)
    finally:
        breakdown.uninstall()
    out = breakdown.summary()
    out["cycle_s"] = round(wall, 4)
    out["raised"] = result.raised
    window_sql = next(
        ((sql, params) for sql, params in breakdown.statements if "slo_slipoint" in sql), None
    )
    return out, window_sql


# ---- main ---------------------------------------------------------------------------------------------
def main() -> int:
    started_all = time.perf_counter()
    total_slos = SERVICES * SLOS_PER_SERVICE
    common.log(f"{NAME}: {SERVICES} services x {SLOS_PER_SERVICE} SLOs, 30 days of SLI points")
    machine = common.machine()
    redis_env, redis_client = data.prepare()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from apps.slo import alerting

    tenant = data.create_tenant("bench-slo-burn")
    data.add_email_channel(tenant)
    now = timezone.now()
    end = alerting.evaluation_end(now)
    eval_now = end + timedelta(seconds=settings.SLO_EVALUATION_LAG_SECONDS)
    assert alerting.evaluation_end(eval_now) == end
    _services, slos = data.create_services(
        tenant,
        SERVICES,
        SLOS_PER_SERVICE,
        window_days=30,
        last_data_at=end - timedelta(minutes=1),
    )
    burning = [
        slo.pk
        for index, slo in enumerate(slos)
        if index % SLOS_PER_SERVICE == 0 and (index // SLOS_PER_SERVICE) % 4 == 0
    ]
    common.log(f"SLI points up to {end:%Y-%m-%d %H:%M} UTC; {len(burning)} SLOs burning")
    generated = data.generate_sli_points(tenant.pk, end, burning=burning)
    data.analyze("slo_slo", "slo_service", "alerts_alert", "alerts_channel", "alerts_policy")
    with connection.cursor() as cur:
        cur.execute("SELECT current_user, version()")
        db_user, db_version = cur.fetchone()
    minutes_from = datetime.fromisoformat(generated["minutes_from"])

    problems: list[str] = []
    first: dict[int, list[float]] = {d: [] for d in WINDOWS}
    steady: dict[int, list[float]] = {d: [] for d in WINDOWS}
    window_sums_s: dict[int, list[float]] = {d: [] for d in WINDOWS}
    try:
        # Warm-up (not counted): a first and a steady cycle.
        for _ in range(2):
            wall, result = cycle(eval_now)
            common.log(f"  warm-up cycle: {1000 * wall:.0f} ms, raised {result.raised}")
        for _rep in range(FIRST_REPS):
            for days in WINDOWS:
                set_window(tenant.pk, days)
                resolve_all(tenant.pk)
                wall, result = cycle(eval_now)
                check(result, len(burning), f"first cycle {days} d", problems)
                first[days].append(wall)
                common.log(
                    f"  first cycle,  {days:2d}-day SLOs: {1000 * wall:6.0f} ms "
                    f"(raised {result.raised}, firing {result.firing})"
                )
        for _rep in range(STEADY_REPS):
            for days in WINDOWS:
                set_window(tenant.pk, days)
                wall, result = cycle(eval_now)
                check(result, len(burning), f"steady cycle {days} d", problems)
                steady[days].append(wall)
                common.log(f"  steady cycle, {days:2d}-day SLOs: {1000 * wall:6.0f} ms")

        # The window-sum query alone, and the naive baseline, per window length.
        from apps.slo.models import SLO
        from apps.tenancy import rls

        step = max(1, total_slos // NAIVE_SLOS)
        naive_ids = [slo.pk for slo in slos[::step]][:NAIVE_SLOS]
        naive_ids += [pk for pk in burning[:2] if pk not in naive_ids]
        naive_result = {}
        for days in WINDOWS:
            set_window(tenant.pk, days)
            with rls.all_tenants_context():
                current = list(SLO.objects.filter(tenant=tenant).order_by("pk"))
            named = named_windows(current, end)
            ids = [slo.pk for slo in current]
            for _ in range(5):
                wall, app_sums = timed_window_sums(ids, named)
                window_sums_s[days].append(wall)
            subset = [slo for slo in current if slo.pk in set(naive_ids)]
            naive(subset[:3], end, minutes_from)  # warm-up
            naive_s, naive_sums, naive_firing = naive(subset, end, minutes_from)
            mismatches = compare_sums(naive_sums, app_sums)
            problems += mismatches[:5]
            naive_result[days] = {
                "slos_timed": len(subset),
                "queries": sum(len(f) for f in naive_sums.values()),
                "seconds": round(naive_s, 4),
                "seconds_scaled_to_all": round(naive_s * total_slos / len(subset), 3),
                "pages_in_subset": sum("page" in f for f in naive_firing.values()),
                "sum_mismatches_vs_app": len(mismatches),
            }
            common.log(
                f"  {days:2d}-day: window_sums alone median "
                f"{1000 * statistics.median(window_sums_s[days]):.0f} ms; naive "
                f"{1000 * naive_s:.0f} ms for {len(subset)} SLOs -> "
                f"{naive_result[days]['seconds_scaled_to_all']:.2f} s for {total_slos} "
                f"({len(mismatches)} sum mismatches)"
            )

        # Where the time goes, and the plan of the window-sum query (30-day SLOs).
        set_window(tenant.pk, 30)
        breakdown_first, _ = breakdown_cycle(eval_now, first=True, tenant_id=tenant.pk)
        breakdown_steady, window_sql = breakdown_cycle(eval_now, first=False, tenant_id=tenant.pk)
        plan = data.explain(*window_sql) if window_sql else ["(window-sum query not captured)"]
    except Exception as exc:
        print(exc, file=sys.stderr)
        data.flush_redis(redis_client)
        sys.exit(f"failed: {exc!r}".splitlines()[0])
    data.flush_redis(redis_client)

    med = {
        kind: {d: statistics.median(v[d]) for d in WINDOWS}
        for kind, v in (("first", first), ("steady", steady))
    }
    worst = max(max(v) for series in (first, steady) for v in series.values())
    result = {
        "description": f"apps.slo.alerting.evaluate() over {total_slos} SLOs ({SERVICES} services "
        f"x {SLOS_PER_SERVICE}) with 30 days of SLI points, in-process as the app role (RLS), "
        "30-day vs 7-day windows on the same data, first cycle (25 pages raised) and steady state "
        "(pages firing), vs a naive per-SLO, per-window evaluation (same run)",
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "database": {"name": common.BENCH_DB, "user": db_user, "server": db_version},
        "cache_and_broker": redis_env.get("REDIS_URL", "file cache / file broker"),
        "data": {
            "services": SERVICES,
            "slos": total_slos,
            "burning_slos": len(burning),
            "end": end.isoformat(),
            "sli_points": generated,
        },
        "first_cycle": {f"{d}d": data.summarize(first[d]) for d in WINDOWS},
        "steady_cycle": {f"{d}d": data.summarize(steady[d]) for d in WINDOWS},
        "window_sums_alone": {f"{d}d": data.summarize(window_sums_s[d]) for d in WINDOWS},
        "ratio_30d_to_7d": {
            "first_cycle": round(med["first"][30] / med["first"][7], 3),
            "steady_cycle": round(med["steady"][30] / med["steady"][7], 3),
            "window_sums_alone": round(
                statistics.median(window_sums_s[30]) / statistics.median(window_sums_s[7]), 3
            ),
        },
        "baseline_naive": {
            **{f"{d}d": naive_result[d] for d in WINDOWS},
            "method": "one query per SLO and window summing the finest points stored: minute "
            "points within raw retention (alert windows, 7-day budget), hour points for the "
            "30-day budget; same burn-rate arithmetic, no writes; scaled linearly to all SLOs",
        },
        "ratio_naive_to_app_steady": {
            f"{d}d": round(naive_result[d]["seconds_scaled_to_all"] / med["steady"][d], 2)
            for d in WINDOWS
        },
        "ratio_naive_to_window_sums": {
            f"{d}d": round(
                naive_result[d]["seconds_scaled_to_all"] / statistics.median(window_sums_s[d]), 1
            )
            for d in WINDOWS
        },
        "targets": {
            "cycle_s": TARGET_SECONDS,
            "cycle_met": all(
                med[k][d] <= TARGET_SECONDS for k in ("first", "steady") for d in WINDOWS
            ),
            "worst_single_cycle_s": round(worst, 4),
        },
        "problems": problems,
        "breakdown_first_cycle_30d": breakdown_first,
        "breakdown_steady_cycle_30d": breakdown_steady,
        "explain_window_sums_30d": plan,
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)
    print_report(result)
    return 0


def print_report(r: dict) -> None:
    t = r["targets"]
    print()
    print(
        f"{NAME} ({r['data']['slos']} SLOs, {r['data']['burning_slos']} burning; "
        f"{sum(r['data']['sli_points']['rows'].values()):,} SLI points; "
        f"{r['machine']['cpus']} CPUs)"
    )
    for kind in ("first_cycle", "steady_cycle"):
        for d in WINDOWS:
            s = r[kind][f"{d}d"]
            print(
                f"  {kind.replace('_', ' ')}, {d:2d}-day SLOs: median {1000 * s['median_s']:.0f} ms "
                f"(min {1000 * s['min_s']:.0f}, max {1000 * s['max_s']:.0f})"
            )
    ratio = r["ratio_30d_to_7d"]
    print(
        f"  target <= {t['cycle_s']:g} s per cycle: {data.met(t['cycle_met'])}; 30d/7d ratio: "
        f"first {ratio['first_cycle']:.2f}x, steady {ratio['steady_cycle']:.2f}x, window_sums "
        f"alone {ratio['window_sums_alone']:.2f}x (1.0 = independent of window length)"
    )
    for d in WINDOWS:
        n = r["baseline_naive"][f"{d}d"]
        w = r["window_sums_alone"][f"{d}d"]
        print(
            f"  naive, {d:2d}-day: {n['queries']} queries for {n['slos_timed']} SLOs in "
            f"{1000 * n['seconds']:.0f} ms -> {n['seconds_scaled_to_all']:.2f} s for "
            f"{r['data']['slos']}; naive/evaluate (steady) = "
            f"{r['ratio_naive_to_app_steady'][f'{d}d']:.1f}x; window_sums alone "
            f"{1000 * w['median_s']:.0f} ms (naive/window_sums = "
            f"{r['ratio_naive_to_window_sums'][f'{d}d']:.0f}x)"
        )
    for key, title in (
        ("breakdown_first_cycle_30d", "first cycle, 30-day SLOs"),
        ("breakdown_steady_cycle_30d", "steady cycle, 30-day SLOs"),
    ):
        b = r[key]
        print(f"  breakdown, {title} ({1000 * b['cycle_s']:.0f} ms):")
        data.print_breakdown(b)
    if r["problems"]:
        print(f"  WARNING: {len(r['problems'])} problem(s): {r['problems'][:3]}")
    print(f"  bench wall time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
