"""Erasure of one subject with 100,000 rows in two external tables, through the real path (the
request received, verified and approved, the dry run, the start, the execution), against plain
SQL UPDATEs of the same rows in the same run.

Data (bench/_privacy_data.py): the shop, a second PostgreSQL database (`opsportal_bench_ext`)
declared in the data map as two external sources. The subject has 60,000 orders and 40,000
events (100,000 rows); other customers have as many again, interleaved. The erasure applies
`keyed_hash` to the email, `truncate_date` to the order and event times, `replace` to the
billing name and user agent, `set_null` to the address, phone, IP, free text, JSON payload and
session token, and keeps the invoice number (legal hold). The subject also has 50 consent
records in the portal (legal hold: retained, counted).

Measured, in-process with production settings as the app role `opsportal_app`:
- receive: `services.create_request` (erasure), then `transition` to verified and approved
  (the officer's calls, in the tenant's RLS scope);
- preview: `rights.preview(request)`: every source counts what would change (the dry run);
- start: `transition(request, in_progress)` (the erasure restriction, the outbox message);
- execute: `rights.execute(request)` as the worker task runs it (`all_tenants_context()`):
  per external table one transaction (rows read FOR UPDATE, new values computed in Python,
  COPYed into a temp table, one UPDATE ... FROM), then the portal's sources; the time of each
  source's erase is recorded.
The total (receive + preview + start + execute) is the figure for the target. Checked: the
request is completed, no row of either table matches the subject any more, every invoice number
is still there, the erasure records count 60,000 and 40,000 rows.

Baseline, in the same run: the same rows, in file-level copies of the loaded shop database
(`CREATE DATABASE ... TEMPLATE`, made before the portal touched it), one before and one after
the real path: per table one transaction with one plain `UPDATE ... SET` of the same columns
to constants `WHERE lower(email) = subject` (the faster of the two is the baseline).

Diagnostics (BENCH_DIAGNOSTICS=0 skips them): the same erasure again, for a second tenant whose
data map points at a third copy of the loaded shop, with timers around the statements the
external sources send (the FOR UPDATE read, CREATE TEMP, UPDATE ... FROM, COMMIT) and around the
masking functions: where the execution's time goes (the timers add a little of their own).

Target: <= 30 s. Results: bench/results/privacy_erase.json. Exits non-zero only if setup fails
or the erasure does not complete correctly. Env: BENCH_ORDERS (60000), BENCH_EVENTS (40000).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _privacy_data as data

NAME = "privacy_erase"
ORDERS = int(os.environ.get("BENCH_ORDERS", "60000"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "40000"))
DIAGNOSTICS = os.environ.get("BENCH_DIAGNOSTICS", "1") != "0"
CONSENTS = 50
TARGET_SECONDS = 30.0
SUBJECT = data.Subject("ana.silva@example.com", ORDERS, EVENTS, CONSENTS)
BASELINE_SQL = (
    (
        "orders",
        "UPDATE orders SET customer_email = 'h:00000000000000000000000000000000',"
        " placed_at = '2026-01-01', billing_name = '[erased]', shipping_address = NULL,"
        " phone = NULL, delivery_note = NULL WHERE lower(customer_email) = %s",
    ),
    (
        "events",
        "UPDATE events SET subject_email = 'h:00000000000000000000000000000000',"
        " occurred_at = '2026-01-01', ip_address = NULL, user_agent = '[erased]', payload = NULL,"
        " message = NULL, session_token = NULL WHERE lower(subject_email) = %s",
    ),
)


def baseline(conninfo: str, email: str) -> dict:
    """Plain UPDATEs, one transaction per table."""
    import psycopg

    seconds, rows = {}, {}
    with psycopg.connect(conninfo) as conn:
        for table, statement in BASELINE_SQL:
            began = time.perf_counter()
            rows[table] = conn.execute(statement, [email]).rowcount
            conn.commit()
            seconds[table] = round(time.perf_counter() - began, 3)
    return {"seconds": round(sum(seconds.values()), 3), "per_table": seconds, "rows": rows}


def shop_state(conninfo: str, email: str) -> dict:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        return {
            "orders_matching": conn.execute(
                "SELECT count(*) FROM orders WHERE lower(customer_email) = %s", [email]
            ).fetchone()[0],
            "events_matching": conn.execute(
                "SELECT count(*) FROM events WHERE lower(subject_email) = %s", [email]
            ).fetchone()[0],
            "orders_erased": conn.execute(
                "SELECT count(*) FROM orders WHERE billing_name = '[erased]'"
            ).fetchone()[0],
            "invoices": conn.execute(
                "SELECT count(invoice_number) FROM orders WHERE billing_name = '[erased]'"
            ).fetchone()[0],
            "orders_total": conn.execute("SELECT count(*) FROM orders").fetchone()[0],
            "events_total": conn.execute("SELECT count(*) FROM events").fetchone()[0],
        }


class SourceTimer:
    """Wall time of each source's `erase`, recorded around the real methods."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._patched: list[tuple[type, object]] = []

    def __enter__(self) -> SourceTimer:
        from apps.privacy.connectors import ConnectorSource
        from apps.privacy.external import ExternalTableSource
        from apps.privacy.sources import ModelSource, RequestsSource

        for cls in (ExternalTableSource, ModelSource, RequestsSource, ConnectorSource):
            original = cls.__dict__.get("erase")
            if original is None:
                continue

            def timed(source, *args, _original=original, **kwargs):
                began = time.perf_counter()
                try:
                    return _original(source, *args, **kwargs)
                finally:
                    self.seconds[source.name] = round(time.perf_counter() - began, 3)

            cls.erase = timed
            self._patched.append((cls, original))
        return self

    def __exit__(self, *exc) -> None:
        for cls, original in self._patched:
            cls.erase = original


class Breakdown:
    """Time spent in the external sources' statements and in the masking, by kind; the rest of
    an external source's erase is the COPY into the temp table and the loop around it."""

    def __init__(self):
        from collections import Counter

        self.seconds: Counter = Counter()
        self.masking = 0.0
        self._patched: list[tuple[object, str, object]] = []

    def _wrap(self, owner, name: str, label) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label(*args)] += time.perf_counter() - began

        setattr(owner, name, timed)
        self._patched.append((owner, name, original))

    def __enter__(self) -> Breakdown:
        import psycopg

        from apps.privacy import external

        def statement(conn, query, *args) -> str:
            text = query if isinstance(query, str) else query.as_string(conn)
            verb = text.split(None, 1)[0].upper()
            return f"{verb} (information_schema)" if "information_schema" in text else verb

        self._wrap(psycopg.Connection, "execute", statement)
        self._wrap(psycopg.Connection, "commit", lambda *_: "COMMIT")
        self._wrap(psycopg.ServerCursor, "execute", lambda *_: "read FOR UPDATE (DECLARE, FETCH)")
        self._wrap(psycopg.ServerCursor, "fetchmany", lambda *_: "read FOR UPDATE (DECLARE, FETCH)")
        original = external.masked  # called per value: a lean timer of its own
        clock = time.perf_counter

        def masked(*args, **kwargs):
            began = clock()
            value = original(*args, **kwargs)
            self.masking += clock() - began
            return value

        external.masked = masked
        self._patched.append((external, "masked", original))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)


def diagnose(conninfo: str) -> dict:
    """The same erasure for a second tenant on a copy of the shop, with timers."""
    from apps.privacy import rights, services
    from apps.privacy.models import Status
    from apps.tenancy.rls import all_tenants_context, tenant_context

    tenant = data.create_tenant("privacy-bench-diagnostics")
    data.declare_shop(tenant, conninfo)
    request = data.approved_request(tenant, "erasure", SUBJECT.email)
    with tenant_context(tenant):
        request = rights.preview(request)
        request = services.transition(request, Status.IN_PROGRESS, note="erase")
    with all_tenants_context(), SourceTimer() as sources, Breakdown() as breakdown:
        began = time.perf_counter()
        request = rights.execute(request)
        seconds = time.perf_counter() - began
    external = sum(v for k, v in sources.seconds.items() if k.startswith("external."))
    parts = {k: round(v, 3) for k, v in sorted(breakdown.seconds.items())}
    parts["masking (Python, masked() per value)"] = round(breakdown.masking, 3)
    parts["COPY into the temp table and the loop (the rest)"] = round(
        external - sum(breakdown.seconds.values()) - breakdown.masking, 3
    )
    return {
        "status": request.status,
        "execute_seconds": round(seconds, 3),
        "external_sources_seconds": round(external, 3),
        "external_sources_breakdown": parts,
    }


def main() -> int:
    machine = common.machine()
    common.setup_database()
    began = time.perf_counter()
    shop = data.create_shop()
    loaded = data.load_shop(
        shop, [SUBJECT], other_orders=SUBJECT.orders, other_events=SUBJECT.events
    )
    base_dbs = [f"{data.EXT_DB}_base{n}" for n in (1, 2)]
    if DIAGNOSTICS:
        base_dbs.append(f"{data.EXT_DB}_diagnostics")
    base_urls = [data.clone_database(data.EXT_DB, name) for name in base_dbs]
    common.configure_django()
    tenant = data.create_tenant("privacy-bench")
    data.declare_shop(tenant, shop)
    data.load_consents(common.OWNER_URL, tenant.pk, [SUBJECT])
    populate_s = time.perf_counter() - began
    common.log(
        f"shop: {sum(loaded.orders.values()):,} orders, {sum(loaded.events.values()):,} events "
        f"(the subject: {SUBJECT.orders:,} + {SUBJECT.events:,}); {populate_s:.1f} s"
    )

    from apps.privacy import rights, services
    from apps.privacy.models import ErasureRecord, Status
    from apps.tenancy.rls import all_tenants_context, tenant_context

    try:
        common.log("baseline 1: plain UPDATEs")
        baselines = [baseline(base_urls[0], SUBJECT.email)]

        common.log("erasure through the real path")
        phases = {}
        t0 = time.perf_counter()
        request = data.approved_request(tenant, "erasure", SUBJECT.email.title())
        phases["receive"] = time.perf_counter() - t0
        with tenant_context(tenant):
            t0 = time.perf_counter()
            request = rights.preview(request)
            phases["preview"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            request = services.transition(request, Status.IN_PROGRESS, note="erase")
            phases["start"] = time.perf_counter() - t0
        with all_tenants_context(), SourceTimer() as sources:
            t0 = time.perf_counter()
            request = rights.execute(request)
            phases["execute"] = time.perf_counter() - t0
        total = sum(phases.values())
        with all_tenants_context():
            records = {
                r.source: {"status": r.status, "rows": r.rows}
                for r in ErasureRecord.objects.filter(request=request)
            }
        after = shop_state(shop, SUBJECT.email)
        common.log(
            f"real path: {total:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in phases.items())})"
        )

        common.log("baseline 2: plain UPDATEs")
        baselines.append(baseline(base_urls[1], SUBJECT.email))
        base_after = shop_state(base_urls[1], SUBJECT.email)
        diagnostics = None
        if DIAGNOSTICS:
            common.log("diagnostics: the same erasure with timers, on a copy")
            diagnostics = diagnose(base_urls[2])
    finally:
        for name in base_dbs:
            data.drop_database(name)

    problems = []
    if request.status != Status.COMPLETED:
        problems.append(f"request is {request.status}: {request.last_note}")
    expected_state = {
        "orders_matching": 0,
        "events_matching": 0,
        "orders_erased": SUBJECT.orders,
        "invoices": SUBJECT.orders,
    }
    for key, value in expected_state.items():
        if after[key] != value:
            problems.append(f"shop after the erasure: {key} = {after[key]}, expected {value}")
        if base_after[key] != value:
            problems.append(f"shop after the baseline: {key} = {base_after[key]}, expected {value}")
    for source, rows in (
        ("external.shop.public.orders", SUBJECT.orders),
        ("external.shop.public.events", SUBJECT.events),
    ):
        if records.get(source, {}).get("rows") != rows:
            problems.append(f"{source}: erasure record {records.get(source)}, expected {rows}")
    for entry in baselines:
        if entry["rows"] != {"orders": SUBJECT.orders, "events": SUBJECT.events}:
            problems.append(f"baseline updated {entry['rows']}")

    base_s = min(b["seconds"] for b in baselines)
    ratio = total / base_s
    plan_rows = request.plan.get("rows")
    result = {
        "machine": machine,
        "subject_rows": {"orders": SUBJECT.orders, "events": SUBJECT.events},
        "other_rows": {"orders": loaded.orders["others"], "events": loaded.events["others"]},
        "consent_records_retained": CONSENTS,
        "populate_seconds": round(populate_s, 1),
        "measured": {
            "total_seconds": round(total, 3),
            "phases_seconds": {k: round(v, 3) for k, v in phases.items()},
            "erase_seconds_per_source": sources.seconds,
            "plan_rows": plan_rows,
            "erasure_records": records,
            "status": request.status,
            "rows_per_second": round((SUBJECT.orders + SUBJECT.events) / total),
        },
        "baseline_plain_updates": {"seconds": round(base_s, 3), "runs": baselines},
        "ratio_real_path_to_plain_updates": round(ratio, 2),
        "ratio_execute_to_plain_updates": round(phases["execute"] / base_s, 2),
        "diagnostics": diagnostics,
        "shop_after": after,
        "problems": problems,
        "targets": {"seconds_max": TARGET_SECONDS, "met": total <= TARGET_SECONDS},
    }
    common.write_result(NAME, result)
    for problem in problems:
        common.log(f"PROBLEM: {problem}")
    common.log(
        f"erasure of {SUBJECT.orders + SUBJECT.events:,} rows: {total:.2f} s (target 30 s; "
        f"preview {phases['preview']:.2f} s, execute {phases['execute']:.2f} s), plain UPDATEs "
        f"{base_s:.2f} s, ratio {ratio:.1f}x"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
