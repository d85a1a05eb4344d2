"""Shared pieces of the SLO benchmarks (a helper, not a benchmark itself).

- `prepare()`: a fresh bench database migrated as production, the benchmarks' own Redis database
  for cache and broker (queue `bench-slo`, nothing consumes it), throttling lifted, Django set up
  as the least-privilege role (see bench/_common.py and bench/_compliance_data.py);
- `create_services()`: services and SLOs of one tenant, through the ORM as the app role in the
  tenant's RLS scope (bulk_create: no audit event per row, no SLI rebuild; the points come next);
- `generate_sli_points()`: an SLO set's SLIPoint rows written with set-based SQL as the table
  owner, exactly the shape ingestion leaves (apps/slo/rollups.py): minute points ("m") for the
  last 8 days, hour points ("h") and UTC-day points ("d") for 31 days, starts aligned, good and
  total as floats, tenant_id set; an hour point is the sum of its minute points where they exist,
  a day point the sum of its hour points. Constraints and indexes are dropped for the load and
  rebuilt from their own definitions (indexes in two parallel sessions), then VACUUM ANALYZE;
- `service_hour_rows()`: realistic ServiceHour rows (11 latency buckets, counters as
  `{"sum", "n", "last"}`, up to 20 error samples), COPYed as the owner by `copy_rows()`;
- `MinuteRows`: realistic per-minute rows as a service pushes them (11 buckets, 2 counters,
  an error sample on rows with errors).

Traffic has a daily shape (`diurnal`), per-SLO base volumes of 200-2,000 events a minute and a
healthy error ratio of 0.003-0.009 % (burn <= 0.09 for 99.9 %: no condition holds, for 7- or
30-day windows); `burning` SLOs get a 5 % error ratio in the last BURN_MINUTES minutes, which
fires the page condition 1h/5m (burn 50x) whatever the window.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _compliance_data as compliance

BOUNDS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)  # ms; plus "+Inf"
# Cumulative share of requests at or under each bound (a typical web service).
SHAPE = (0.04, 0.12, 0.33, 0.58, 0.80, 0.935, 0.975, 0.992, 0.998, 0.9995)
BURN_MINUTES = 90
BURN_RATIO = 0.05
MINUTE_DAYS = 8
HOUR_DAYS = 31
ERROR_MESSAGES = (
    "upstream timeout after 2000 ms calling inventory-service /v2/stock",
    "psycopg.errors.SerializationFailure: could not serialize access due to concurrent update",
    "KeyError: 'customer_id' in checkout.views.submit_order",
    "redis.exceptions.ConnectionError: Error 111 connecting to cache:6379. Connection refused.",
    "HTTP 503 from payments-gateway: circuit open",
    "ValueError: invalid literal for int() with base 10: 'undefined'",
    "TimeoutError: read timed out (pool=search, 5000 ms)",
    "IntegrityError: duplicate key value violates unique constraint order_ref",
)


def prepare() -> tuple[dict[str, str], object | None]:
    """Fresh bench database, own Redis database, Django as the app role (like the others)."""
    common.setup_database()
    redis_env, redis_client = compliance.redis_setup()
    if redis_env:
        redis_env["CELERY_QUEUE"] = "bench-slo"
    os.environ.update(redis_env)
    os.environ["THROTTLE_RATE"] = "1000000/s"
    common.configure_django()
    return redis_env, redis_client


flush_redis = compliance.flush_redis
owner_connection = compliance.owner_connection
create_tenant_with_token = compliance.create_tenant_with_token
wsgi_environ = compliance.wsgi_environ
InProcessPortal = compliance.InProcessPortal


def create_tenant(slug: str):
    from apps.tenancy.rls import all_tenants_context
    from apps.tenancy.services import create_tenant as create

    with all_tenants_context():
        return create(slug=slug, name=slug.replace("-", " ").title())


def add_email_channel(tenant) -> None:
    """An enabled email channel, so a raised page creates a delivery and a broker message."""
    from apps.alerts.models import Channel
    from apps.alerts.services import save_channel
    from apps.tenancy.rls import tenant_context

    with tenant_context(tenant):
        save_channel(
            Channel(tenant=tenant, name="oncall-email", kind="email", emails="oncall@example.com")
        )


SLO_KINDS = (
    # (suffix, sli_type, objective %, latency threshold ms)
    ("availability", "availability", "99.9", None),
    ("latency-300", "latency", "99", 300.0),
    ("latency-1000", "latency", "99.9", 1000.0),
    ("availability-strict", "availability", "99.95", None),
    ("orders", "ratio", "99.5", None),
)


def create_services(
    tenant,
    count: int,
    slos_per_service: int,
    *,
    window_days: int = 30,
    prefix: str = "svc",
    last_data_at: datetime | None = None,
):
    """(services, slos) of one tenant, through the ORM as the app role in its RLS scope."""
    from django.utils import timezone

    from apps.slo.models import SLO, Service
    from apps.tenancy.rls import tenant_context

    now = timezone.now()
    with tenant_context(tenant):
        services = Service.objects.bulk_create(
            [
                Service(
                    tenant=tenant,
                    name=f"{prefix}-{i:03d}",
                    display_name=f"{prefix.title()} {i:03d}",
                    owner=f"team-{i % 12:02d}",
                    report_ratios=[
                        {"name": "Order success", "good": "orders_ok", "total": "orders"}
                    ],
                    counter_aggregates={"queue_depth": "last", "csat": "mean"},
                    last_data_at=last_data_at,
                    created_at=now,
                )
                for i in range(count)
            ]
        )
        slos = SLO.objects.bulk_create(
            [
                SLO(
                    tenant=tenant,
                    service=service,
                    name=f"{service.name}-{suffix}",
                    sli_type=sli_type,
                    objective_percent=Decimal(objective),
                    window_days=window_days,
                    latency_threshold_ms=threshold,
                    good_counter="orders_ok" if sli_type == "ratio" else "",
                    total_counter="orders" if sli_type == "ratio" else "",
                    created_at=now,
                )
                for service in services
                for suffix, sli_type, objective, threshold in SLO_KINDS[:slos_per_service]
            ]
        )
    return services, slos


# ---- set-based loads as the owner ------------------------------------------------------------------
def drop_for_load(table: str) -> dict:
    """Drop a table's foreign keys, unique and primary key constraints and secondary indexes
    for a bulk load (committed); `rebuild_after_load` recreates them from their definitions."""
    with owner_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype, pg_get_indexdef(conindid)"
            " FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('f', 'u', 'p')",
            [table],
        )
        constraints = cur.fetchall()
        cur.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i WHERE i.indrelid = %s::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """,
            [table],
        )
        indexes = cur.fetchall()
        for name, _definition, _kind, _index in sorted(constraints, key=lambda c: c[2] != "f"):
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in indexes:
            cur.execute(f"DROP INDEX {name}")
        conn.commit()
    return {"table": table, "constraints": constraints, "indexes": indexes}


def rebuild_after_load(plan: dict, timings: dict) -> None:
    """Indexes (those behind the primary key and unique constraints included) built in
    parallel sessions, then the constraints attached to them and the foreign keys validated."""
    from concurrent.futures import ThreadPoolExecutor

    table = plan["table"]
    t0 = time.perf_counter()
    builds = [definition for _name, definition in plan["indexes"]]
    builds += [index for _n, _d, kind, index in plan["constraints"] if kind in ("u", "p")]

    def build(definition: str) -> None:
        with owner_connection() as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(definition)
            conn.commit()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(build, builds))
    with owner_connection() as conn:
        for name, definition, kind, _index in sorted(
            plan["constraints"], key=lambda c: {"p": 0, "u": 1, "f": 2}[c[2]]
        ):
            if kind == "p":
                conn.execute(
                    f'ALTER TABLE {table} ADD CONSTRAINT "{name}" PRIMARY KEY USING INDEX "{name}"'
                )
            elif kind == "u":
                conn.execute(
                    f'ALTER TABLE {table} ADD CONSTRAINT "{name}" UNIQUE USING INDEX "{name}"'
                )
            else:
                conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        conn.commit()
    timings[f"{table}: indexes and constraints rebuilt"] = round(time.perf_counter() - t0, 2)


def _step(label: str, cur, sql: str, params: dict, timings: dict) -> int:
    t0 = time.perf_counter()
    cur.execute(sql, params)
    timings[label] = round(time.perf_counter() - t0, 2)
    common.log(f"  {label}: {cur.rowcount:,} rows, {timings[label]} s")
    return cur.rowcount


# Per-SLO parameters, from its id (the same in every statement below).
_BASE = "(200 + (s.id * 7919) %% 1801)"  # events per minute at the daily mean: 200-2000
_HEALTHY = "(0.00003 + (s.id %% 7) * 0.00001)"  # error ratio 0.003-0.009 %
# Daily shape by UTC hour of day: 0.5x at night to 1.5x at the afternoon peak.
_DIURNAL = "(1 + 0.5 * sin(2 * pi() * (date_part('hour', {t}) - 9) / 24))"


def diurnal(hour_of_day: int) -> float:
    return 1 + 0.5 * math.sin(2 * math.pi * (hour_of_day - 9) / 24)


def generate_sli_points(
    tenant_id: int,
    end: datetime,
    *,
    burning: list[int] = (),
    minute_days: int = MINUTE_DAYS,
    hour_days: int = HOUR_DAYS,
) -> dict:
    """SLIPoint rows of every SLO of the tenant up to `end` (exclusive, minute-aligned UTC), as
    ingestion leaves them; returns row counts and timings."""
    end = end.astimezone(UTC).replace(second=0, microsecond=0)
    minutes_from = (end - timedelta(days=minute_days)).replace(minute=0)  # whole hours
    hours_from = (end - timedelta(days=hour_days)).replace(hour=0, minute=0)  # whole days
    burn_from = end - timedelta(minutes=BURN_MINUTES)
    params = {
        "t": tenant_id,
        "end": end,
        "mfrom": minutes_from,
        "hfrom": hours_from,
        "burning": list(burning),
        "burn_from": burn_from,
        "burn_ratio": BURN_RATIO,
    }
    timings: dict[str, float] = {}
    counts: dict[str, int] = {}

    def session(conn) -> None:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET synchronous_commit = off")

    # Minutes: base x daily shape x +-10 % noise per minute, whole events; the error ratio
    # healthy, or BURN_RATIO in the last minutes of a burning SLO. Two sessions (half the SLOs
    # each), float8 arithmetic throughout.
    minute_sql = f"""
        INSERT INTO slo_slipoint (tenant_id, slo_id, resolution, start, good, total)
        SELECT s.tenant_id, s.id, 'm', m, v.total - v.total *
               CASE WHEN s.id = ANY(%(burning)s) AND m >= %(burn_from)s
                    THEN %(burn_ratio)s ELSE {_HEALTHY} END,
               v.total
        FROM slo_slo s
        CROSS JOIN generate_series(%(mfrom)s::timestamptz,
                                   %(end)s::timestamptz - interval '1 minute',
                                   interval '1 minute') AS m
        CROSS JOIN LATERAL (
            SELECT floor({_BASE} * {_DIURNAL.format(t="m")}
                         * (0.9 + 0.2 * ((date_part('epoch', m)::bigint / 60 * 7919
                                          + s.id * 104729) %% 1000) / 1000.0::float8))
                   AS total
        ) v
        WHERE s.tenant_id = %(t)s AND s.id %% 2 = %(part)s
        """

    def minutes(part: int) -> int:
        with owner_connection() as conn:
            session(conn)
            cur = conn.execute(minute_sql, {**params, "part": part})
            conn.commit()
            return cur.rowcount

    from concurrent.futures import ThreadPoolExecutor

    plan = drop_for_load("slo_slipoint")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts["m"] = sum(pool.map(minutes, (0, 1)))
    timings["minute points"] = round(time.perf_counter() - t0, 2)
    common.log(f"  minute points: {counts['m']:,} rows, {timings['minute points']} s")
    with owner_connection() as conn, conn.cursor() as cur:
        session(conn)
        # Hours with minutes: their sums (the current hour is partial, as ingestion has it).
        counts["h"] = _step(
            "hour points (sums of minute points)",
            cur,
            """
            INSERT INTO slo_slipoint (tenant_id, slo_id, resolution, start, good, total)
            SELECT tenant_id, slo_id, 'h', date_trunc('hour', start), sum(good), sum(total)
            FROM slo_slipoint
            WHERE tenant_id = %(t)s AND resolution = 'm'
            GROUP BY tenant_id, slo_id, date_trunc('hour', start)
            """,
            params,
            timings,
        )
        # Older hours (their minutes purged): 60 minutes of the same shape, noise per hour.
        counts["h"] += _step(
            "hour points (older, minutes purged)",
            cur,
            f"""
            INSERT INTO slo_slipoint (tenant_id, slo_id, resolution, start, good, total)
            SELECT s.tenant_id, s.id, 'h', h, v.total - v.total * {_HEALTHY}, v.total
            FROM slo_slo s
            CROSS JOIN generate_series(%(hfrom)s::timestamptz,
                                       %(mfrom)s::timestamptz - interval '1 hour',
                                       interval '1 hour') AS h
            CROSS JOIN LATERAL (
                SELECT 60 * floor({_BASE} * {_DIURNAL.format(t="h")}
                                  * (0.95 + 0.1 * ((date_part('epoch', h)::bigint / 3600
                                                    * 7919 + s.id * 104729) %% 1000)
                                     / 1000.0::float8)) AS total
            ) v
            WHERE s.tenant_id = %(t)s
            """,
            params,
            timings,
        )
        counts["d"] = _step(
            "UTC day points (sums of hour points)",
            cur,
            """
            INSERT INTO slo_slipoint (tenant_id, slo_id, resolution, start, good, total)
            SELECT tenant_id, slo_id, 'd', date_trunc('day', start), sum(good), sum(total)
            FROM slo_slipoint
            WHERE tenant_id = %(t)s AND resolution = 'h'
            GROUP BY tenant_id, slo_id, date_trunc('day', start)
            """,
            params,
            timings,
        )
        conn.commit()
    rebuild_after_load(plan, timings)
    t0 = time.perf_counter()
    with owner_connection() as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE slo_slipoint")
    timings["vacuum analyze"] = round(time.perf_counter() - t0, 2)
    return {
        "rows": counts,
        "seconds_by_step": timings,
        "minutes_from": minutes_from.isoformat(),
        "hours_from": hours_from.isoformat(),
        "end": end.isoformat(),
    }


def analyze(*tables: str) -> None:
    with owner_connection() as conn:
        conn.autocommit = True
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")


# ---- rows as services push them / as rollups keep them ---------------------------------------------
def cumulative_buckets(requests: int, rng: random.Random, skew: float = 1.0) -> dict[str, int]:
    """11 cumulative buckets ("+Inf" = requests); `skew` > 1 makes the service slower."""
    buckets = {}
    previous = 0
    for bound, share in zip(BOUNDS, SHAPE, strict=True):
        jitter = share**skew * (1 + rng.uniform(-0.02, 0.02))
        count = max(previous, min(requests, round(requests * jitter)))
        buckets[str(bound)] = count
        previous = count
    buckets["+Inf"] = requests
    return buckets


def fingerprint(index: int) -> str:
    return f"{(index * 2654435761) % 2**32:08x}{index:04d}"


class MinuteRows:
    """Per-minute rows of one service's routes as a pusher sends them (API body rows): ~5-190
    requests a route and minute with the daily shape, ~0.2 % errors, 11 cumulative buckets (a
    per-route latency profile, +-2 % jitter), 2 counters, an error sample on rows with errors."""

    def __init__(self, service: str, routes: list[str], *, version: str = "2026.11.3", seed=42):
        self.service = service
        self.routes = routes
        self.version = version
        self.rng = random.Random(seed)
        self.bases = [5 + (i * 7919) % 120 for i in range(len(routes))]
        self.shares = [
            [share ** (1 + (i % 5) * 0.05) for share in SHAPE] for i in range(len(routes))
        ]
        self.keys = [str(bound) for bound in BOUNDS]

    def minute(self, minute: datetime) -> list[dict]:
        rng = self.rng
        stamp = minute.strftime("%Y-%m-%dT%H:%M:%SZ")
        shape = diurnal(minute.hour)
        rows = []
        for index, route in enumerate(self.routes):
            requests = max(1, round(self.bases[index] * shape * (0.8 + 0.4 * rng.random())))
            jitter = 1 + 0.04 * (rng.random() - 0.5)
            buckets = {}
            previous = 0
            for key, share in zip(self.keys, self.shares[index], strict=True):
                previous = max(previous, min(requests, round(requests * share * jitter)))
                buckets[key] = previous
            buckets["+Inf"] = requests
            expected = requests * 0.002  # 0.2 % errors
            errors = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
            row = {
                "service": self.service,
                "route": route,
                "version": self.version,
                "minute": stamp,
                "requests": requests,
                "errors": errors,
                "buckets": buckets,
                "counters": {"orders": requests // 3, "queue_depth": round(40 * rng.random(), 1)},
            }
            if errors:
                k = (index * 3 + (minute.minute % 3)) % len(ERROR_MESSAGES)
                row["error_samples"] = [
                    {"fingerprint": fingerprint(k), "message": ERROR_MESSAGES[k], "count": errors}
                ]
            rows.append(row)
        return rows


def service_hour_rows(
    tenant_id: int, service_ids: list[int], hours: list[datetime], *, seed: int = 7
) -> list[tuple]:
    """ServiceHour rows (tenant_id, service_id, hour, requests, errors, buckets, counters,
    error_samples) for every service and hour: 20-200 routes' worth of traffic, 11 buckets,
    5 counters, up to 20 error samples (TOP_ERRORS_KEPT)."""
    rng = random.Random(seed)
    rows = []
    for index, service_id in enumerate(service_ids):
        base = 3000 + (index * 7919) % 30000  # requests a minute at the daily mean
        for hour in hours:
            requests = round(60 * base * diurnal(hour.hour) * rng.uniform(0.9, 1.1))
            errors = round(requests * rng.uniform(0.0002, 0.003))
            orders = requests // 3
            samples = sorted(
                (
                    {
                        "fingerprint": fingerprint(k),
                        "count": rng.randrange(1, max(2, errors // 4)),
                        "message": ERROR_MESSAGES[k % len(ERROR_MESSAGES)] + f" (#{k})",
                    }
                    for k in rng.sample(range(200), 20)
                ),
                key=lambda s: (-s["count"], s["fingerprint"]),
            )
            rows.append(
                (
                    tenant_id,
                    service_id,
                    hour,
                    requests,
                    errors,
                    cumulative_buckets(requests, rng, skew=1 + (index % 5) * 0.05),
                    {
                        "orders": {"sum": orders, "n": 60, "last": orders / 60},
                        "orders_ok": {"sum": orders * 0.995, "n": 60, "last": orders / 60},
                        "queue_depth": {"sum": 60 * 17.5, "n": 60, "last": rng.uniform(0, 40)},
                        "open_tickets": {"sum": 60 * 12, "n": 60, "last": 12},
                        "csat": {"sum": 60 * 4.4, "n": 60, "last": 4.5},
                    },
                    samples,
                )
            )
    return rows


def copy_text(rows: list[tuple]) -> bytes:
    """COPY text format: datetimes ISO, dicts and lists JSON. No value may need COPY escaping
    (a backslash, tab, newline or carriage return): checked per line."""
    lines = []
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for row in rows:
        line = "\t".join(
            dumps(v)
            if isinstance(v, dict | list)
            else v.isoformat()
            if isinstance(v, datetime)
            else str(v)
            for v in row
        )
        if "\\" in line or "\r" in line or "\n" in line or line.count("\t") != len(row) - 1:
            raise ValueError(f"a value needs COPY escaping: {line[:120]!r}")
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def copy_rows(table: str, columns: tuple[str, ...], payload: bytes) -> float:
    """Seconds from COPY to COMMIT of a pre-encoded payload, as the owner (bypasses RLS)."""
    with owner_connection() as conn, conn.cursor() as cur:
        t0 = time.perf_counter()
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(payload)
        conn.commit()
        return time.perf_counter() - t0


_UNQUOTED = re.compile(r"(?:FROM|INTO|UPDATE|TABLE(?: IF NOT EXISTS)?)\s+\"?(\w+)", re.I)
_JOINED = re.compile(r"\bJOIN\s+\"?(\w+)", re.I)


def statement_label(sql: str) -> str:
    """common.statement_label, naming unquoted tables (apps/slo/bulk.py) and joins too."""
    label = common.statement_label(sql)
    verb = label.split(" ", 1)[0]
    if label.endswith(" ?") or verb in ("CREATE", "DROP"):
        table = _UNQUOTED.search(sql)
        if table:
            label = f"{verb} {table.group(1)}"
    joined = _JOINED.search(sql)
    if joined and verb == "SELECT":
        label += f" JOIN {joined.group(1)}"
    if re.search(r"ON CONFLICT", sql, re.I):
        label += " ON CONFLICT DO UPDATE"
    return label


class Breakdown:
    """Wall time of named functions (patched on their modules while installed; nested ones are
    included in their callers), SQL time per statement kind, and the COMMITs (deferred foreign
    key checks timed apart), summed over everything that runs while installed."""

    def __init__(self, targets: tuple[tuple[str, str, str], ...], label=None):
        self.targets = targets
        self.label = label or statement_label
        self.wall: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.sql: dict[str, list[float]] = {}
        self.statements: list[tuple[str, object]] = []
        self.keep_statements = False
        self.originals: list[tuple[object, str, object]] = []
        self.missing: list[str] = []

    def install(self) -> None:
        import importlib

        from django.db import connection
        from psycopg.pq import TransactionStatus

        self.missing = []
        for module_name, attr, label in self.targets:
            try:  # the code under test may not have (or no longer have) this function
                module = importlib.import_module(module_name)
                original = getattr(module, attr)
            except (ImportError, AttributeError):
                self.missing.append(f"{module_name}.{attr}")
                continue
            self.patch(module, attr, self.timed(original, label))
        connection.execute_wrappers.append(self._sql)
        original_commit = connection._commit

        def timed_commit():
            # Foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at COMMIT, row by row.
            raw = connection.connection
            if raw is not None and raw.info.transaction_status == TransactionStatus.INTRANS:
                t0 = time.perf_counter()
                raw.execute("SET CONSTRAINTS ALL IMMEDIATE")
                self.add("COMMIT: deferred foreign key checks", time.perf_counter() - t0)
            t0 = time.perf_counter()
            try:
                return original_commit()
            finally:
                self.add("COMMIT: the commit itself", time.perf_counter() - t0)

        connection._commit = timed_commit

    def patch(self, module, attr: str, replacement) -> None:
        self.originals.append((module, attr, getattr(module, attr)))
        setattr(module, attr, replacement)

    def uninstall(self) -> None:
        from django.db import connection

        for module, attr, original in reversed(self.originals):
            setattr(module, attr, original)
        self.originals.clear()
        connection.execute_wrappers.remove(self._sql)
        del connection._commit

    def add(self, label: str, seconds: float) -> None:
        self.wall[label] = self.wall.get(label, 0.0) + seconds
        self.calls[label] = self.calls.get(label, 0) + 1

    def timed(self, func, label: str):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - t0)

        return wrapper

    def _sql(self, execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            label = self.label(sql)
            self.sql.setdefault(label, []).append(time.perf_counter() - t0)
            if self.keep_statements:
                self.statements.append((sql, params))

    def summary(self, first: tuple[str, ...] = ()) -> dict:
        labels = [*first, *(label for _, _, label in self.targets)]
        labels += ["COMMIT: deferred foreign key checks", "COMMIT: the commit itself"]
        return {
            "phases_s": {
                label: {"s": round(self.wall[label], 4), "calls": self.calls[label]}
                for label in labels
                if label in self.wall
            },
            "sql_s_by_statement": {
                label: {
                    "count": len(times),
                    "s_total": round(sum(times), 4),
                    "s_first_call": round(times[0], 4),
                    "s_last_call": round(times[-1], 4),
                }
                for label, times in sorted(self.sql.items(), key=lambda kv: -sum(kv[1]))
            },
            "sql_s_total": round(sum(sum(t) for t in self.sql.values()), 4),
            "sql_statements": sum(len(t) for t in self.sql.values()),
            "functions_not_found": self.missing,
        }


def print_breakdown(b: dict, indent: str = "    ", top: int = 8) -> None:
    for label, v in b["phases_s"].items():
        print(f"{indent}{v['s']:8.3f} s  x{v['calls']:<4d} {label}")
    print(f"{indent}SQL by statement ({b['sql_statements']} statements, {b['sql_s_total']:.3f} s):")
    for label, s in list(b["sql_s_by_statement"].items())[:top]:
        trend = (
            f"  (first call {1000 * s['s_first_call']:.0f} ms, last {1000 * s['s_last_call']:.0f} ms)"
            if s["count"] > 4
            else ""
        )
        print(f"{indent}{s['s_total']:8.3f} s  x{s['count']:<4d} {label}{trend}")


def explain(sql: str, params, *, tenant_id: int | None = None) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a captured statement through the app's own connection (app
    role, RLS in force): in the tenant's scope, or all tenants' when tenant_id is None."""
    from django.db import connection

    from apps.tenancy import rls

    scope = rls.all_tenants_context() if tenant_id is None else rls.tenant_context(tenant_id)
    with scope, connection.cursor() as cur:
        cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return [row[0] for row in cur.fetchall()]


def summarize(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
        "all_s": [round(v, 4) for v in values],
    }


def met(ok: bool) -> str:
    return "target met" if ok else "target NOT met"


if __name__ == "__main__":  # `make bench` runs bench/[!_]*.py only; this is a helper
    print("bench/_slo_data.py: shared helpers of the SLO benchmarks")
