"""The access package (`apps.privacy.package.build_package`) of one subject with 100,000 rows in
three sources, and again of one with 200,000: throughput, and the memory it takes; against a raw
read of the same rows in the same run.

Data (bench/_privacy_data.py): the shop, a second PostgreSQL database (`opsportal_bench_ext`)
declared in the data map as two external sources (`orders`, `events`: realistic columns,
free-text delivery notes and support messages with secret-looking values planted at a fixed
rate, the subjects' emails in several spellings, interleaved with other customers' rows), and
consent records in the portal (`privacy.consents`, a model source). Subject A has 60,000 orders,
30,000 events and 10,000 consent records (100,000 rows); subject B twice that (200,000). Other
customers add 60,000 orders and 30,000 events.

Measured, in a fresh child process per package (production settings, the app role
`opsportal_app`, `all_tenants_context()` as the worker task runs it), after a warm-up package of
a subject with no rows:
- `build_package(request)` for an access request of A, then of B, BENCH_REPS times each (the
  machine is shared: the median is the figure, the range is reported): seconds and rows/s (rows
  in the manifest / wall time), the ZIP's size;
- peak memory growth during the build: the process's peak resident set size (the kernel's
  high-water mark VmHWM, reset just before the build through /proc/self/clear_refs) above its
  RSS just before the build; then, in another child, the Python heap's peak (tracemalloc)
  during the same build, untimed;
- where the time goes (child of A, untimed): the sources' rows read alone, read and scrubbed
  by the redaction scanner, and the whole package, one after the other.
The package is checked: rows per source and the redaction counts must match what was loaded
and planted.

Baseline, in the same run, before and after each package (the faster of the two counts): the
same rows read raw, the same columns in the same order, through server-side cursors fetching
5,000 rows at a time (what the sources do, minus everything after the fetch); and as COPY ... TO
STDOUT text (the floor: no parsing). Ratio: package time / cursor-read time.

Targets: >= 20,000 rows/s; peak RSS growth <= 100 MB, and flat when the rows double (B's growth
within 10 MB or 20 % of A's).

Results: bench/results/privacy_export.json. Exits non-zero only if setup fails or a package is
wrong (row counts, redactions). Env: BENCH_ORDERS (60000), BENCH_EVENTS (30000), BENCH_CONSENTS
(10000): subject A's rows, B has twice as many; BENCH_REPS (3); BENCH_TRACEMALLOC (1; 0 skips
that child).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _privacy_data as data

NAME = "privacy_export"
ORDERS = int(os.environ.get("BENCH_ORDERS", "60000"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "30000"))
CONSENTS = int(os.environ.get("BENCH_CONSENTS", "10000"))
REPS = max(1, int(os.environ.get("BENCH_REPS", "3")))
TRACEMALLOC = os.environ.get("BENCH_TRACEMALLOC", "1") != "0"
TARGET_ROWS_PER_SECOND = 20_000
TARGET_GROWTH_MB = 100
SUBJECT_A = data.Subject("ana.silva@example.com", ORDERS, EVENTS, CONSENTS)
SUBJECT_B = data.Subject("bruno.costa@example.com", 2 * ORDERS, 2 * EVENTS, 2 * CONSENTS)
NOBODY = "nobody@example.com"
MB = 1024 * 1024


def _status(field: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class PeakRSS:
    """The process's peak RSS while the block runs, from the kernel's own high-water mark
    (VmHWM, reset to the current RSS at the start by writing 5 to /proc/self/clear_refs): exact,
    and no sampling thread, whose GIL hand-overs would slow the build down."""

    def __enter__(self) -> PeakRSS:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        self.start = _status("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        self.peak = _status("VmHWM")

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / MB


# --- the child: one package in a fresh process ---------------------------------------------------


def _request(request_id: int):
    from apps.privacy.models import PrivacyRequest

    return PrivacyRequest.objects.select_related("tenant").get(pk=request_id)


def _package(request_id: int):
    from apps.privacy.package import build_package

    package = build_package(_request(request_id))
    size = package.path.stat().st_size
    package.path.unlink()
    return package, size


def _phases(request_id: int) -> dict:
    """Rows read alone; read and scrubbed; the whole package."""
    from collections import Counter

    from apps.privacy.package import _clean
    from apps.privacy.rights import context_for, identity_of
    from apps.privacy.sources import sources_for

    request = _request(request_id)
    context, who = context_for(request), identity_of(request)
    sources = sorted(sources_for(request.tenant), key=lambda s: s.name)
    timings = {}
    for label, scrub in (("read", False), ("read_and_scrub", True)):
        began = time.perf_counter()
        counts: Counter = Counter()
        for source in sources:
            fields = source.exported_fields()
            for row in source.export(request.tenant, who, context):
                if scrub:
                    {k: _clean(row.get(k), counts) for k in fields}
        timings[f"{label}_seconds"] = round(time.perf_counter() - began, 3)
    began = time.perf_counter()
    _package(request_id)
    timings["package_seconds"] = round(time.perf_counter() - began, 3)
    return timings


def child(mode: str, request_id: int, warmup_id: int) -> dict:
    common.configure_django()
    from apps.tenancy.rls import all_tenants_context

    with all_tenants_context():
        _package(warmup_id)  # imports, connections, first-use caches
        if mode == "phases":
            return _phases(request_id)
        if mode == "tracemalloc":
            import tracemalloc

            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            _package(request_id)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return {"tracemalloc_peak_mb": round((peak - base) / MB, 2)}
        with PeakRSS() as memory:
            began = time.perf_counter()
            package, size = _package(request_id)
            seconds = time.perf_counter() - began
    return {
        "seconds": round(seconds, 3),
        "rows": package.manifest["rows"],
        "rows_per_source": {s["source"]: s["rows"] for s in package.manifest["sources"]},
        "redactions": package.manifest["redactions"],
        "zip_bytes": size,
        "rss_before_mb": round(memory.start / MB, 1),
        "rss_peak_mb": round(memory.peak / MB, 1),
        "rss_growth_mb": round(memory.growth_mb, 1),
    }


def run_child(mode: str, request_id: int, warmup_id: int) -> dict:
    proc = subprocess.run(
        [common.PYTHON, __file__, "--child", mode, str(request_id), str(warmup_id)],
        cwd=common.REPO,
        env=common.production_env(),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CHILD ")), None)
    if proc.returncode != 0 or line is None:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        raise RuntimeError(f"the {mode} child exited {proc.returncode}")
    return json.loads(line.removeprefix("CHILD "))


# --- the main process ----------------------------------------------------------------------------


def baseline(conninfo: str, tenant_id: int, email: str) -> dict:
    began = time.perf_counter()
    rows = data.raw_reads(conninfo, common.APP_URL, tenant_id, email, copy=False)
    cursor_s = time.perf_counter() - began
    began = time.perf_counter()
    copied = data.raw_reads(conninfo, common.APP_URL, tenant_id, email, copy=True)
    copy_s = time.perf_counter() - began
    if copied != rows:
        raise RuntimeError(f"COPY read {copied} rows, the cursors {rows}")
    return {"rows": rows, "cursor_seconds": cursor_s, "copy_seconds": copy_s}


def check(subject: data.Subject, result: dict, loaded: data.Loaded) -> list[str]:
    """What is wrong with a package's manifest, if anything."""
    expected = {
        "external.shop.public.orders": subject.orders,
        "external.shop.public.events": subject.events,
        "privacy.consents": subject.consents,
        "privacy.requests": 1,
    }
    problems = [
        f"{source}: {result['rows_per_source'].get(source)} rows, expected {rows}"
        for source, rows in expected.items()
        if result["rows_per_source"].get(source) != rows
    ]
    planted = dict(sorted(loaded.plants.get(subject.email, {}).items()))
    if result["redactions"] != planted:
        problems.append(f"redactions {result['redactions']}, planted {planted}")
    return problems


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        mode, request_id, warmup_id = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print("CHILD " + json.dumps(child(mode, request_id, warmup_id)), flush=True)
        return 0

    machine = common.machine()
    common.setup_database()
    began = time.perf_counter()
    shop = data.create_shop()
    loaded = data.load_shop(
        shop,
        [SUBJECT_A, SUBJECT_B],
        other_orders=SUBJECT_A.orders,
        other_events=SUBJECT_A.events,
    )
    common.configure_django()
    tenant = data.create_tenant("privacy-bench")
    data.declare_shop(tenant, shop)
    consents = data.load_consents(common.OWNER_URL, tenant.pk, [SUBJECT_A, SUBJECT_B])
    requests = {
        email: data.approved_request(tenant, "access", email).pk
        for email in (NOBODY, SUBJECT_A.email, SUBJECT_B.email)
    }
    populate_s = time.perf_counter() - began
    common.log(
        f"shop: {sum(loaded.orders.values()):,} orders, {sum(loaded.events.values()):,} events; "
        f"{consents:,} consent records; {populate_s:.1f} s"
    )
    from django.db import connections

    connections.close_all()

    sizes = {}
    problems: list[str] = []
    labels = [f"{subject.rows // 1000}k" for subject in (SUBJECT_A, SUBJECT_B)]
    for label, subject in zip(labels, (SUBJECT_A, SUBJECT_B), strict=True):
        first = baseline(shop, tenant.pk, subject.email)
        common.log(f"{label}: package of {subject.rows:,} rows, {REPS} times")
        reps = [run_child("timed", requests[subject.email], requests[NOBODY]) for _ in range(REPS)]
        second = baseline(shop, tenant.pk, subject.email)
        cursor_s = min(first["cursor_seconds"], second["cursor_seconds"])
        copy_s = min(first["copy_seconds"], second["copy_seconds"])
        times = sorted(r["seconds"] for r in reps)
        measured = {
            **sorted(reps, key=lambda r: r["seconds"])[len(reps) // 2],  # the median's figures
            "seconds_min": times[0],
            "seconds_max": times[-1],
            "rss_growth_mb": max(r["rss_growth_mb"] for r in reps),
            "reps": reps,
        }
        rate = measured["rows"] / measured["seconds"]
        problems += [f"{label}: {p}" for rep in reps for p in check(subject, rep, loaded)]
        entry = {
            "subject_rows": subject.rows,
            "package": {
                **measured,
                "rows_per_second": round(rate),
                "rows_per_second_range": [
                    round(measured["rows"] / times[-1]),
                    round(measured["rows"] / times[0]),
                ],
            },
            "baseline": {
                "rows": first["rows"],
                "cursor_seconds": round(cursor_s, 3),
                "cursor_rows_per_second": round(first["rows"] / cursor_s),
                "copy_seconds": round(copy_s, 3),
                "copy_rows_per_second": round(first["rows"] / copy_s),
                "runs": [first, second],
            },
            "ratio_package_to_cursor_read": round(measured["seconds"] / cursor_s, 2),
            "ratio_package_to_copy": round(measured["seconds"] / copy_s, 2),
        }
        if TRACEMALLOC:
            entry["package"].update(
                run_child("tracemalloc", requests[subject.email], requests[NOBODY])
            )
        sizes[label] = entry
        common.log(
            f"{label}: median {measured['seconds']:.2f} s ({times[0]:.2f}-{times[-1]:.2f}), "
            f"{rate:,.0f} rows/s, RSS +{measured['rss_growth_mb']:.1f} MB (the most of {REPS}); "
            f"cursor read {cursor_s:.2f} s, COPY {copy_s:.2f} s"
        )
    common.log(f"where the time goes ({labels[0]})")
    phases = run_child("phases", requests[SUBJECT_A.email], requests[NOBODY])

    small, large = sizes[labels[0]]["package"], sizes[labels[1]]["package"]
    growth = max(small["rss_growth_mb"], large["rss_growth_mb"])
    flat = large["rss_growth_mb"] <= small["rss_growth_mb"] + max(10, 0.2 * small["rss_growth_mb"])
    rate = small["rows_per_second"]
    result = {
        "machine": machine,
        "rows_loaded": {
            "orders": dict(loaded.orders),
            "events": dict(loaded.events),
            "consents": consents,
        },
        "planted_secrets": {k: dict(v) for k, v in loaded.plants.items() if "@example.com" in k},
        "populate_seconds": round(populate_s, 1),
        "memory_measure": "RSS growth: the kernel's peak resident set size (VmHWM, reset through "
        "/proc/self/clear_refs just before build_package) minus RSS just before it, in a fresh "
        "process after a warm-up package (the most of the repetitions); "
        "tracemalloc_peak_mb: the Python heap's peak above its level before the build, in "
        "another process",
        "sizes": sizes,
        "phases_subject_a": phases,
        "problems": problems,
        "targets": {
            "rows_per_second_min": TARGET_ROWS_PER_SECOND,
            "rows_per_second_met": rate >= TARGET_ROWS_PER_SECOND
            and large["rows_per_second"] >= TARGET_ROWS_PER_SECOND,
            "rss_growth_mb_max": TARGET_GROWTH_MB,
            "rss_growth_met": growth <= TARGET_GROWTH_MB,
            "flat_when_doubled": flat,
        },
    }
    common.write_result(NAME, result)
    for problem in problems:
        common.log(f"PROBLEM: {problem}")
    common.log(
        f"export: {small['rows']:,} rows {small['seconds']:.2f} s = {rate:,.0f} rows/s (target "
        f"20,000), {sizes[labels[0]]['ratio_package_to_cursor_read']:.1f}x a cursor read "
        f"({sizes[labels[0]]['baseline']['cursor_rows_per_second']:,} rows/s); "
        f"{large['rows']:,} rows {large['seconds']:.2f} s = {large['rows_per_second']:,} rows/s; "
        f"RSS growth {small['rss_growth_mb']:.1f} MB and {large['rss_growth_mb']:.1f} MB "
        f"(target 100 MB, flat: {'yes' if flat else 'no'})"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
