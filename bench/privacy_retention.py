"""Retention (`apps.privacy.retention.enforce`) over a backlog of 1,000,000 expired rows in the
portal's own tables, as the portal runs it, against one plain DELETE per table of the same rows
in the same run.

Data (bench/_privacy_data.py `populate_retention`, rows as bench/_drill_data.py generates them,
COPYed as the table owner, then ANALYZE): one tenant with people, 12 services, 24 SLOs, channels
and flags, and a backlog in every category of apps/privacy/retention.py CATEGORIES: SLO minute
samples past the raw retention (about a third of the rows), their minute SLI points, hour and
day points and hourly rollups older than 400 days, idempotency records older than 24 hours,
resolved violations older than 90 days, resolved alerts older than 30 days with their
deliveries, delivery attempts and digest links (deleted with them, as the models cascade),
daily compliance trends older than 365 days. Rows that must stay are mixed in: open alerts,
open and suppressed violations, the recent hour and day SLI points, compliance runs and
results, digests. "Expired rows" below are all rows the run deletes, cascades included (the
tenant's rows per table before minus after).

Measured, in-process with production settings as the app role `opsportal_app`, in the tenant's
RLS scope (as the beat job runs it): `retention.enforce(tenant, now=...)` with the default
batch size, from the start to the completed run (its evidence and audit event included).
Per category: rows and batches from the run's report, the report's `longest_batch_seconds`
(timed inside the batch's transaction, before its COMMIT) and, measured here, each batch
transaction from its first statement to the end of its COMMIT (`on_commit`), which is how long
it holds its locks; and the category's wall time.

Baseline, in the same run: a file-level copy of the loaded database (`CREATE DATABASE ...
TEMPLATE`, taken before the run: the same rows, the same pages), where one transaction issues
one plain DELETE per table of the same rows (the run's cutoffs; children before parents, as the
foreign keys need), as the app role in the tenant's scope. Afterwards both databases must hold
the same number of rows in every table.

Targets: <= 120 s in all; no transaction holding locks for more than 1 s.

Results: bench/results/privacy_retention.json. Exits non-zero only if setup fails, the run does
not complete, or the two databases differ afterwards. Env: BENCH_ROWS (1000000).
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _privacy_data as data

NAME = "privacy_retention"
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
TARGET_SECONDS = 120.0
TARGET_TRANSACTION_SECONDS = 1.0
BASE_DB = f"{common.BENCH_DB}_retention_base"
ALERTS = "SELECT id FROM alerts_alert WHERE tenant_id = %(t)s AND resolved_at < %(c)s"
VIOLATIONS = (
    "SELECT id FROM compliance_violation"
    " WHERE tenant_id = %(t)s AND status = 'resolved' AND resolved_at < %(c)s"
)
# (category, statement): the same rows as the categories' querysets, children first.
BASELINE_SQL = (
    (
        "alert-history",
        "DELETE FROM alerts_deliveryattempt WHERE delivery_id IN"
        f" (SELECT id FROM alerts_delivery WHERE alert_id IN ({ALERTS}))",
    ),
    ("alert-history", f"DELETE FROM alerts_delivery WHERE alert_id IN ({ALERTS})"),
    ("alert-history", f"DELETE FROM alerts_digest_alerts WHERE alert_id IN ({ALERTS})"),
    ("alert-history", f"DELETE FROM alerts_acklink WHERE alert_id IN ({ALERTS})"),
    ("alert-history", "DELETE FROM alerts_alert WHERE tenant_id = %(t)s AND resolved_at < %(c)s"),
    (
        "compliance-trends",
        "DELETE FROM compliance_ruletrend WHERE tenant_id = %(t)s AND day < %(d)s",
    ),
    (
        "idempotency-keys",
        "DELETE FROM core_idempotencyrecord WHERE tenant_id = %(t)s AND created_at < %(c)s",
    ),
    (
        "resolved-violations",
        f"UPDATE overrides_override SET violation_id = NULL WHERE violation_id IN ({VIOLATIONS})",
    ),
    (
        "resolved-violations",
        "DELETE FROM compliance_violation"
        " WHERE tenant_id = %(t)s AND status = 'resolved' AND resolved_at < %(c)s",
    ),
    ("slo-canary-checks", "DELETE FROM slo_canarycheck WHERE tenant_id = %(t)s AND minute < %(c)s"),
    (
        "slo-minute-points",
        "DELETE FROM slo_slipoint WHERE tenant_id = %(t)s AND resolution = 'm' AND start < %(c)s",
    ),
    ("slo-points", "DELETE FROM slo_slipoint WHERE tenant_id = %(t)s AND start < %(c)s"),
    ("slo-raw-minutes", "DELETE FROM slo_minutesample WHERE tenant_id = %(t)s AND minute < %(c)s"),
    ("slo-route-hours", "DELETE FROM slo_routehour WHERE tenant_id = %(t)s AND hour < %(c)s"),
    ("slo-service-hours", "DELETE FROM slo_servicehour WHERE tenant_id = %(t)s AND hour < %(c)s"),
)


def baseline(conninfo: str, tenant_id: int, time_zone: str, cutoffs: dict[str, str]) -> dict:
    """One transaction, one plain DELETE per table, as the app role in the tenant's scope. A date
    column is compared with the cutoff's date in the tenant's time zone, as retention does."""
    from zoneinfo import ZoneInfo

    import psycopg

    per_statement = []
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "SELECT set_config('opsportal.tenant_id', %s, false),"
            " set_config('opsportal.all_tenants', 'off', false)",
            [str(tenant_id)],
        )
        conn.commit()
        began = time.perf_counter()
        for category, statement in BASELINE_SQL:
            cutoff = datetime.fromisoformat(cutoffs[category])
            params = {
                "t": tenant_id,
                "c": cutoff,
                "d": cutoff.astimezone(ZoneInfo(time_zone)).date(),
            }
            t0 = time.perf_counter()
            rows = conn.execute(statement, params).rowcount
            per_statement.append(
                {
                    "category": category,
                    "statement": statement.split(" WHERE")[0],
                    "rows": rows,
                    "seconds": round(time.perf_counter() - t0, 3),
                }
            )
        t0 = time.perf_counter()
        conn.commit()
        commit_s = time.perf_counter() - t0
        seconds = time.perf_counter() - began
    return {
        "seconds": round(seconds, 3),
        "commit_seconds": round(commit_s, 3),
        "rows": sum(s["rows"] for s in per_statement if s["statement"].startswith("DELETE")),
        "statements": per_statement,
    }


class Instruments:
    """Around the run, through retention's own module functions: when each category starts,
    and how long each batch transaction lasts up to the end of its COMMIT."""

    def __init__(self):
        self.starts: list[tuple[str, float]] = []
        self.transactions: dict[str, list[float]] = defaultdict(list)
        self._patched: list[tuple[str, object]] = []

    def __enter__(self) -> Instruments:
        from django.db import transaction

        from apps.privacy import retention

        expired, apply, finish = retention.expired, retention._apply, retention._finish

        def timed_expired(policy, *args, **kwargs):
            self.starts.append((policy.category, time.perf_counter()))
            return expired(policy, *args, **kwargs)

        def timed_apply(policy, *args, **kwargs):
            began = time.perf_counter()
            rows = apply(policy, *args, **kwargs)
            transaction.on_commit(
                lambda: self.transactions[policy.category].append(time.perf_counter() - began)
            )
            return rows

        def timed_finish(*args, **kwargs):
            self.starts.append(("(finish: evidence, audit event)", time.perf_counter()))
            return finish(*args, **kwargs)

        for name, replacement in (
            ("expired", timed_expired),
            ("_apply", timed_apply),
            ("_finish", timed_finish),
        ):
            self._patched.append((name, getattr(retention, name)))
            setattr(retention, name, replacement)
        return self

    def __exit__(self, *exc) -> None:
        from apps.privacy import retention

        for name, original in self._patched:
            setattr(retention, name, original)

    def category_seconds(self, end: float) -> dict[str, float]:
        marks = [*self.starts, ("end", end)]
        return {
            category: round(marks[i + 1][1] - at, 3) for i, (category, at) in enumerate(marks[:-1])
        }


def main() -> int:
    machine = common.machine()
    common.setup_database()
    began = time.perf_counter()
    now = datetime.now(UTC)
    tenant_id = data.populate_retention(common.OWNER_URL, ROWS, now=now)
    before = data.table_counts(common.OWNER_URL, tenant_id)
    populate_s = time.perf_counter() - began
    common.log(f"populated {sum(before.values()):,} rows in {populate_s:.1f} s")
    began = time.perf_counter()
    base_url = data.clone_database(common.BENCH_DB, BASE_DB)
    clone_s = time.perf_counter() - began
    base_app_url = common.APP_URL.rsplit("/", 1)[0] + f"/{BASE_DB}"
    common.log(f"copy of the database for the baseline: {clone_s:.1f} s")

    common.configure_django()
    from apps.privacy import retention
    from apps.privacy.models import RetentionRun
    from apps.tenancy.models import Tenant
    from apps.tenancy.rls import all_tenants_context, tenant_context

    try:
        with all_tenants_context():
            tenant = Tenant.objects.get(pk=tenant_id)
        run_now = now + timedelta(minutes=5)
        common.log("retention.enforce")
        with tenant_context(tenant), Instruments() as instruments:
            t0 = time.perf_counter()
            run = retention.enforce(tenant, now=run_now)
            end = time.perf_counter()
        seconds = end - t0
        after = data.table_counts(common.OWNER_URL, tenant_id)
        common.log(f"enforce: {run.status} in {seconds:.1f} s")

        common.log("baseline: one plain DELETE per table, one transaction")
        plain = baseline(base_app_url, tenant_id, tenant.time_zone, run.cutoffs)
        base_after = data.table_counts(base_url, tenant_id)
        common.log(f"plain DELETEs: {plain['seconds']:.1f} s")
    finally:
        data.drop_database(BASE_DB)

    deleted = {t: before[t] - after[t] for t in before}
    expired_rows = sum(deleted.values())
    problems = []
    if run.status != RetentionRun.COMPLETED:
        problems.append(f"run is {run.status}")
    differ = {t: (after[t], base_after[t]) for t in after if after[t] != base_after[t]}
    if differ:
        problems.append(f"rows left differ (retention, plain DELETE): {differ}")
    category_s = instruments.category_seconds(end)
    policies = {}
    for category, entry in run.report["policies"].items():
        transactions = instruments.transactions.get(category, [])
        policies[category] = {
            "rows": entry["rows"],
            "batches": entry["batches"],
            "seconds": category_s.get(category),
            "report_longest_batch_seconds": entry["longest_batch_seconds"],
            "longest_transaction_seconds": round(max(transactions), 3) if transactions else 0,
            "median_transaction_seconds": round(sorted(transactions)[len(transactions) // 2], 3)
            if transactions
            else 0,
        }
    longest_report = max(p["report_longest_batch_seconds"] for p in policies.values())
    longest = max(p["longest_transaction_seconds"] for p in policies.values())
    ratio = seconds / plain["seconds"]
    result = {
        "machine": machine,
        "rows_before": before,
        "rows_deleted": deleted,
        "expired_rows": expired_rows,
        "populate_seconds": round(populate_s, 1),
        "copy_seconds": round(clone_s, 1),
        "batch_size": min(retention.settings.RETENTION_BATCH_SIZE, 5000),
        "measured": {
            "status": run.status,
            "seconds": round(seconds, 2),
            "rows_per_second": round(expired_rows / seconds),
            "finish_seconds": category_s.get("(finish: evidence, audit event)"),
            "policies": policies,
            "report_longest_batch_seconds": longest_report,
            "longest_transaction_seconds": longest,
        },
        "baseline_plain_delete": plain,
        "ratio_enforce_to_plain_delete": round(ratio, 2),
        "problems": problems,
        "targets": {
            "seconds_max": TARGET_SECONDS,
            "seconds_met": seconds <= TARGET_SECONDS,
            "transaction_seconds_max": TARGET_TRANSACTION_SECONDS,
            "transaction_met": longest <= TARGET_TRANSACTION_SECONDS,
            "report_longest_batch_met": longest_report <= TARGET_TRANSACTION_SECONDS,
        },
    }
    common.write_result(NAME, result)
    for problem in problems:
        common.log(f"PROBLEM: {problem}")
    worst = max(policies, key=lambda c: policies[c]["longest_transaction_seconds"])
    common.log(
        f"retention of {expired_rows:,} expired rows: {seconds:.1f} s (target 120 s), "
        f"{expired_rows / seconds:,.0f} rows/s; longest transaction {longest:.2f} s in {worst} "
        f"(report: {longest_report:.2f} s; target 1 s); plain DELETEs {plain['seconds']:.1f} s, "
        f"ratio {ratio:.1f}x"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
