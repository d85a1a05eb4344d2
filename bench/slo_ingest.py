"""Ingesting one day of 200 routes (288,000 minute rows) through `POST /api/v1/slo/events`:
server time vs a raw COPY and a plain ORM bulk_create of the same rows, same run.

The portal runs in this process (production settings, DEBUG off, the least-privilege role
opsportal_app, so row-level security is in force; Redis as cache and broker when reachable).
"Server time" is the time Django's WSGI handler takes for one `POST /api/v1/slo/events` with a
CI token and a 10,000-row body, measured around the WSGI call with a prebuilt environ (what a
gunicorn worker calls; no HTTP, no client): the middleware stack, token auth, throttle, reading
and parsing the JSON, validating every row, and the transaction that upserts the minute rows and
brings the hour rollups (RouteHour, ServiceHour) and the SLI points (minute, hour, UTC day) of
the service's 2 SLOs up to date (apps/slo/rollups.py), then the commit (deferred FK checks).

Data: one service with 2 SLOs (availability 99.9 %, latency <= 300 ms 99 %), 200 routes, the
most recent 24 complete UTC hours (1,440 minutes; within raw retention, nothing in the future),
one row per route and minute: ~5-190 requests, ~0.2 % errors, 11 cumulative latency buckets, 2
counters, an error sample on rows with errors (bench/_slo_data.py). Pushed in time order as a
pusher does (minute by minute, all routes of a minute together): 29 batches of 10,000 rows
(the last 8,000), 50 minutes each. The figure is the sum of the 29 server times (target
<= 30 s); rows/s = 288,000 / that sum.

Baselines, in the same run, interleaved batch by batch with the API requests:
(a) raw COPY: the same rows (same values as the API stores) COPYed as the table owner into
    slo_minutesample itself (same indexes, unique constraint and deferred foreign keys; no RLS
    and no rollups: COPY FROM is refused under RLS, the owner bypasses it) for another service,
    pre-encoded COPY text, COPY to COMMIT. Ratio = API / COPY.
(b) ORM bulk_create: `MinuteSample.objects.bulk_create(rows, batch_size=2000)` of the same rows
    (objects pre-built) for a third service, as the app role in the tenant's RLS scope, one
    transaction per batch: storage alone, without validation, upsert or rollups (information;
    every BENCH_ORM_EVERY-th batch (10) is timed and the total scaled, to keep the wall time).

The prebuilt bodies and baseline rows (millions of Python objects) are frozen out of the garbage
collector (gc.freeze) before timing, so they do not slow the measured code's collections.

Breakdown (not a target): wall time of the ingestion phases and SQL time per statement (first
and last call, to show costs that grow with the table), summed over the 29 timed requests; the
wrappers are installed around the API requests only and cost microseconds per call. Functions
the code under test does not have are skipped and listed.

Results: bench/results/slo_ingest.json. Exits non-zero only if setup or a request fails.
Env: BENCH_ROUTES (200), BENCH_MINUTES (1440), BENCH_BATCH (10000), BENCH_ORM_EVERY (10).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _slo_data as data

NAME = "slo_ingest"
ROUTES = int(os.environ.get("BENCH_ROUTES", "200"))
MINUTES = int(os.environ.get("BENCH_MINUTES", "1440"))
BATCH = int(os.environ.get("BENCH_BATCH", "10000"))
ORM_EVERY = int(os.environ.get("BENCH_ORM_EVERY", "10"))
TARGET_SECONDS = 30.0
PATH = "/api/v1/slo/events"
SERVICE = "checkout-api"
COPY_COLUMNS = (
    "tenant_id",
    "service_id",
    "route",
    "version",
    "minute",
    "requests",
    "errors",
    "buckets",
    "counters",
    "error_samples",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RESOURCES = (
    "orders",
    "orders/{id}",
    "orders/{id}/items",
    "orders/{id}/refunds",
    "carts",
    "carts/{id}",
    "carts/{id}/items",
    "checkout",
    "checkout/{id}/confirm",
    "payments",
    "payments/{id}",
    "customers",
    "customers/{id}",
    "customers/{id}/addresses",
    "products",
    "products/{id}",
    "products/{id}/reviews",
    "search",
    "search/suggest",
    "inventory/{sku}",
    "shipping/quotes",
    "shipping/{id}",
    "coupons/{code}",
    "wishlists",
    "wishlists/{id}",
    "sessions",
    "auth/token",
    "auth/refresh",
    "users/me",
    "users/me/orders",
    "recommendations",
    "prices/{sku}",
    "stores",
    "stores/{id}",
    "returns",
    "returns/{id}",
    "invoices/{id}",
    "gift-cards/{code}",
    "loyalty/points",
    "health/deep",
)


def routes(count: int) -> list[str]:
    names = [f"{m} /api/v2/{r}" for r in RESOURCES for m in METHODS]
    return (
        names[:count]
        if count <= len(names)
        else names + [f"GET /api/v2/extra/{i}" for i in range(count - len(names))]
    )


# ---- the measured request ---------------------------------------------------------------------
def check(status: int, payload: dict, expected: int, label: str) -> None:
    if status != 200 or payload.get("rows") != expected:
        raise RuntimeError(f"{label}: HTTP {status}: {json.dumps(payload)[:800]}")


# ---- breakdown ------------------------------------------------------------------------------------
BREAKDOWN_TARGETS = (  # functions absent from the code under test are skipped (and listed)
    ("apps.slo.ingest", "validate_batch", "ingest.validate_batch (every row checked)"),
    ("apps.slo.services", "record_batch", "services.record_batch (transaction, below)"),
    ("apps.slo.rollups", "store", "  rollups.store"),
    ("apps.slo.bulk", "upsert", "    bulk.upsert (every call, all tables)"),
    ("apps.slo.rollups", "add_batch", "    add_batch (new minutes: add to rollups)"),
    ("apps.slo.rollups", "recompute_hours", "    recompute_hours (read back, aggregate)"),
    ("apps.slo.rollups", "_upsert_hours", "      _upsert_hours (RouteHour, ServiceHour)"),
    ("apps.slo.rollups", "_write_hours", "      _write_hours (RouteHour, ServiceHour)"),
    ("apps.slo.rollups", "store_sli", "      store_sli (SLI points)"),
    ("apps.slo.rollups", "_recompute_days", "        _recompute_days"),
)
JSON_LABEL = "json.loads of the body"


class _Proxy:
    """A JSON module with its `loads` timed (the rest passed through)."""

    def __init__(self, module, loads):
        self._module = module
        self.loads = loads

    def __getattr__(self, name):
        return getattr(self._module, name)


def install(breakdown) -> None:
    """The breakdown's wrappers, plus the API view's JSON `loads` (json or orjson)."""
    import importlib

    breakdown.install()
    api = importlib.import_module("apps.slo.api")
    for name in ("orjson", "json"):
        module = getattr(api, name, None)
        if module is not None and hasattr(module, "loads"):
            loads = module.loads
            breakdown.patch(api, name, _Proxy(module, breakdown.timed(loads, JSON_LABEL)))
            break


# ---- data ---------------------------------------------------------------------------------------
def build_batches(end: datetime, route_names: list[str]) -> list[list[dict]]:
    """Rows of MINUTES minutes ending at `end` (exclusive), minute by minute, in batches."""
    source = data.MinuteRows(SERVICE, route_names)
    start = end - timedelta(minutes=MINUTES)
    rows = []
    for m in range(MINUTES):
        rows += source.minute(start + timedelta(minutes=m))
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def copy_payload(rows: list[dict], tenant_id: int, service_id: int) -> bytes:
    """The rows as the API stores them (validation keeps canonical buckets, +Inf = requests,
    and error samples as fingerprint/message/count), in COPY text format, COPY_COLUMNS order."""
    lines = []
    for r in rows:
        samples = r.get("error_samples", [])
        line = (
            f"{tenant_id}\t{service_id}\t{r['route']}\t{r['version']}\t{r['minute']}\t"
            f"{r['requests']}\t{r['errors']}\t{_ENCODE(r['buckets'])}\t"
            f"{_ENCODE(r['counters'])}\t{_ENCODE(samples)}"
        )
        if "\\" in line or "\n" in line or "\r" in line or line.count("\t") != 9:
            raise ValueError(f"a value needs COPY escaping: {line[:120]!r}")
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def orm_objects(rows: list[dict], tenant_id: int, service_id: int) -> list:
    from apps.slo.models import MinuteSample

    return [
        MinuteSample(
            tenant_id=tenant_id,
            service_id=service_id,
            route=r["route"],
            version=r["version"],
            minute=datetime.fromisoformat(r["minute"].replace("Z", "+00:00")),
            requests=r["requests"],
            errors=r["errors"],
            buckets=r["buckets"],
            counters=r["counters"],
            error_samples=r.get("error_samples", []),
        )
        for r in rows
    ]


def timed_bulk_create(tenant, objects: list) -> float:
    from django.db import transaction

    from apps.slo.models import MinuteSample
    from apps.tenancy.rls import tenant_context

    with tenant_context(tenant):
        t0 = time.perf_counter()
        with transaction.atomic():
            MinuteSample.objects.bulk_create(objects, batch_size=2000)
        return time.perf_counter() - t0


def make_services(tenant) -> dict[str, int]:
    from decimal import Decimal

    from apps.slo import services
    from apps.slo.models import SLO
    from apps.tenancy.rls import tenant_context

    ids = {}
    with tenant_context(tenant):
        for name, with_slos in (
            (SERVICE, True),
            ("warm-up", True),
            ("copy-baseline", False),
            ("orm-baseline", False),
        ):
            service = services.save_service(tenant, {"name": name, "display_name": name.title()})
            ids[name] = service.pk
            if with_slos:
                services.save_slo(
                    SLO(
                        tenant=tenant,
                        service=service,
                        name=f"{name}-availability",
                        sli_type="availability",
                        objective_percent=Decimal("99.9"),
                    )
                )
                services.save_slo(
                    SLO(
                        tenant=tenant,
                        service=service,
                        name=f"{name}-latency",
                        sli_type="latency",
                        objective_percent=Decimal("99"),
                        latency_threshold_ms=300.0,
                    )
                )
    return ids


def verify(tenant_id: int, service_id: int, route_count: int, total_rows: int) -> dict:
    """What the API left: minute rows, hour rollups, SLI points (read as the owner)."""
    with data.owner_connection() as conn, conn.cursor() as cur:
        out = {}
        for label, sql in (
            ("minute_rows", "SELECT count(*) FROM slo_minutesample WHERE service_id = %s"),
            ("route_hours", "SELECT count(*) FROM slo_routehour WHERE service_id = %s"),
            ("service_hours", "SELECT count(*) FROM slo_servicehour WHERE service_id = %s"),
            (
                "requests_in_minutes",
                "SELECT sum(requests) FROM slo_minutesample WHERE service_id = %s",
            ),
            (
                "requests_in_service_hours",
                "SELECT sum(requests) FROM slo_servicehour WHERE service_id = %s",
            ),
            (
                "requests_in_route_hours",
                "SELECT sum(requests) FROM slo_routehour WHERE service_id = %s",
            ),
        ):
            cur.execute(sql, [service_id])
            out[label] = cur.fetchone()[0]
        cur.execute(
            "SELECT p.resolution, count(*), sum(p.total) FROM slo_slipoint p"
            " JOIN slo_slo s ON s.id = p.slo_id WHERE s.service_id = %s"
            " GROUP BY p.resolution ORDER BY p.resolution",
            [service_id],
        )
        out["sli_points"] = {r: {"rows": n, "total_events": t} for r, n, t in cur.fetchall()}
    problems = []
    if out["minute_rows"] != total_rows:
        problems.append(f"{out['minute_rows']} minute rows stored, {total_rows} sent")
    if out["service_hours"] != MINUTES // 60 or out["route_hours"] != route_count * MINUTES // 60:
        problems.append(f"{out['service_hours']} service hours, {out['route_hours']} route hours")
    if (
        not out["requests_in_minutes"]
        == out["requests_in_service_hours"]
        == out["requests_in_route_hours"]
    ):
        problems.append("hour rollups do not sum to the minute rows")
    out["problems"] = problems
    return out


# ---- main ---------------------------------------------------------------------------------------------
def main() -> int:
    started_all = time.perf_counter()
    common.log(f"{NAME}: {ROUTES} routes x {MINUTES} minutes through {PATH}, batches of {BATCH}")
    machine = common.machine()
    redis_env, redis_client = data.prepare()
    from django.db import connection
    from django.utils import timezone

    tenant, token = data.create_tenant_with_token("bench-slo-ingest")
    ids = make_services(tenant)
    portal = data.InProcessPortal(token, PATH)
    with connection.cursor() as cur:
        cur.execute("SELECT current_user, version()")
        db_user, db_version = cur.fetchone()

    # The most recent complete UTC hours: nothing in the future, all within raw retention.
    end = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    route_names = routes(ROUTES)
    t0 = time.perf_counter()
    batches = build_batches(end, route_names)
    bodies = [json.dumps({"rows": b}, separators=(",", ":")).encode() for b in batches]
    copy_payloads = [copy_payload(b, tenant.pk, ids["copy-baseline"]) for b in batches]
    orm_batches = {
        i: orm_objects(b, tenant.pk, ids["orm-baseline"])
        for i, b in enumerate(batches)
        if i % ORM_EVERY == 0
    }
    total_rows = sum(len(b) for b in batches)
    orm_rows = sum(len(batches[i]) for i in orm_batches)
    # The prebuilt data (millions of objects) must not make the measured code's garbage
    # collections slower than in a worker that holds one body: keep the collector off them.
    gc.collect()
    gc.freeze()
    common.log(
        f"built {total_rows:,} rows in {len(batches)} batches ({sum(map(len, bodies)) / 1e6:.0f}"
        f" MB of JSON, ~{len(bodies[0]) / 1e6:.1f} MB a batch) in {time.perf_counter() - t0:.1f} s;"
        f" minutes {end - timedelta(minutes=MINUTES):%Y-%m-%d %H:%M} .. {end:%H:%M} UTC"
    )
    t0 = time.perf_counter()
    json.loads(bodies[0])
    json_loads_s = time.perf_counter() - t0

    try:
        # Warm-up (not counted): 2,000 rows of another service two days back.
        warm_rows = build_batches(end - timedelta(days=2), route_names[:40])[0][:2000]
        for row in warm_rows:
            row["service"] = "warm-up"
        wall, _cpu, status, payload = portal.post(json.dumps({"rows": warm_rows}).encode())
        check(status, payload, len(warm_rows), "warm-up")
        common.log(f"  warm-up: {len(warm_rows)} rows in {1000 * wall:.0f} ms")

        # Timed requests with the breakdown's wrappers installed (around the requests only).
        breakdown = data.Breakdown(BREAKDOWN_TARGETS)
        api_wall, api_cpu, copy_s, orm_s = [], [], [], []
        for i, body in enumerate(bodies):
            install(breakdown)
            try:
                wall, cpu, status, payload = portal.post(body)
            finally:
                breakdown.uninstall()
            check(status, payload, len(batches[i]), f"batch {i + 1}")
            api_wall.append(wall)
            api_cpu.append(cpu)
            copy_s.append(data.copy_rows("slo_minutesample", COPY_COLUMNS, copy_payloads[i]))
            if i in orm_batches:
                orm_s.append(timed_bulk_create(tenant, orm_batches[i]))
            if i % ORM_EVERY == 0 or i == len(bodies) - 1:
                common.log(
                    f"  batch {i + 1:2d}/{len(bodies)}: API {1000 * wall:6.0f} ms (CPU "
                    f"{1000 * cpu:.0f} ms)  COPY {1000 * copy_s[-1]:5.0f} ms"
                    + (f"  bulk_create {1000 * orm_s[-1]:5.0f} ms" if i in orm_batches else "")
                )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        data.flush_redis(redis_client)
        sys.exit(f"failed: {exc}".splitlines()[0])
    data.flush_redis(redis_client)
    stored_check = verify(tenant.pk, ids[SERVICE], len(route_names), total_rows)
    if stored_check["problems"]:
        common.log(f"WARNING: {stored_check['problems']}")

    api_total = sum(api_wall)
    copy_total = sum(copy_s)
    orm_total = sum(orm_s) * total_rows / orm_rows  # scaled from ORM_EVERY-th batches
    result = {
        "description": f"POST {PATH}: {total_rows:,} minute rows ({ROUTES} routes x {MINUTES} "
        f"minutes, one service with 2 SLOs) in {len(batches)} batches of <= {BATCH}, server time "
        "in-process (Django WSGI handler, full middleware stack, prebuilt environ) vs a raw COPY "
        "and an ORM bulk_create of the same rows (no rollups), interleaved batch by batch",
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "database": {"name": common.BENCH_DB, "user": db_user, "server": db_version},
        "cache_and_broker": redis_env.get("REDIS_URL", "file cache / file broker"),
        "data": {
            "rows": total_rows,
            "batches": len(batches),
            "routes": len(route_names),
            "minutes": MINUTES,
            "from": (end - timedelta(minutes=MINUTES)).isoformat(),
            "to": end.isoformat(),
            "body_bytes_typical": len(bodies[0]),
            "json_loads_of_one_body_s": round(json_loads_s, 3),
            "latency_buckets": len(data.BOUNDS) + 1,
            "counters": 2,
            "slos": ["availability 99.9 %", "latency <= 300 ms 99 %"],
        },
        "api": {
            "total_s": round(api_total, 2),
            "rows_per_s": round(total_rows / api_total),
            "cpu_s": round(sum(api_cpu), 2),
            "per_batch": data.summarize(api_wall),
        },
        "baseline_copy": {
            "total_s": round(copy_total, 3),
            "rows_per_s": round(total_rows / copy_total),
            "per_batch": data.summarize(copy_s),
            "method": "COPY FROM STDIN (pre-encoded text) into slo_minutesample as the owner "
            "(same indexes, unique constraint, deferred FKs; no RLS, no rollups), another "
            "service, COPY to COMMIT per batch",
        },
        "baseline_bulk_create": {
            "total_s": round(orm_total, 3),
            "rows_per_s": round(total_rows / orm_total),
            "per_batch": data.summarize(orm_s),
            "rows_timed": orm_rows,
            "scaled": orm_rows != total_rows,
            "method": "MinuteSample.objects.bulk_create(batch_size=2000), objects pre-built, app "
            "role in the tenant's RLS scope, one transaction per batch, plain INSERT (no upsert, "
            f"no validation, no rollups), a third service; every {ORM_EVERY}th batch timed, "
            "total scaled to all rows",
        },
        "ratio_api_to_copy": round(api_total / copy_total, 2),
        "ratio_api_to_bulk_create": round(api_total / orm_total, 2),
        "targets": {"total_s": TARGET_SECONDS, "total_met": api_total <= TARGET_SECONDS},
        "stored": stored_check,
        "breakdown_all_requests": {
            **breakdown.summary(first=(JSON_LABEL,)),
            "note": "summed over the timed requests; iterator() reads (server-side cursor) "
            "count only their DECLARE in SQL time, their fetches are in recompute_hours",
        },
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)
    print_report(result)
    return 0


def print_report(r: dict) -> None:
    a, c, o = r["api"], r["baseline_copy"], r["baseline_bulk_create"]
    print()
    print(
        f"{NAME} ({r['data']['rows']:,} rows = {r['data']['routes']} routes x "
        f"{r['data']['minutes']} minutes, {r['data']['batches']} batches, "
        f"{r['data']['body_bytes_typical'] / 1e6:.1f} MB a body; {r['machine']['cpus']} CPUs)"
    )
    print(
        f"  API server time: {a['total_s']:.1f} s total, {a['rows_per_s']:,} rows/s; per batch "
        f"median {1000 * a['per_batch']['median_s']:.0f} ms (min "
        f"{1000 * a['per_batch']['min_s']:.0f}, max {1000 * a['per_batch']['max_s']:.0f})  "
        f"({data.met(r['targets']['total_met'])}: <= {r['targets']['total_s']:g} s)"
    )
    print(
        f"  raw COPY into slo_minutesample: {c['total_s']:.2f} s, {c['rows_per_s']:,} rows/s -> "
        f"API/COPY = {r['ratio_api_to_copy']:.1f}x"
    )
    print(
        f"  ORM bulk_create (plain INSERT; {o['rows_timed']:,} rows timed, scaled): "
        f"{o['total_s']:.2f} s, {o['rows_per_s']:,} rows/s -> "
        f"API/bulk_create = {r['ratio_api_to_bulk_create']:.1f}x (information)"
    )
    print(f"  where the API time goes (all {r['data']['batches']} requests):")
    data.print_breakdown(r["breakdown_all_requests"])
    if r["stored"]["problems"]:
        print(f"  WARNING, stored data: {r['stored']['problems']}")
    print(f"  bench wall time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
