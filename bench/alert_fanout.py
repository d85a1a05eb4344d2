"""Alert fan-out: 1,000 tier-1 alerts x 3 signed webhook channels through one Celery worker.

receiver  a separate process on 127.0.0.1 (http.server ThreadingHTTPServer, HTTP/1.1 keep-alive,
          TCP_NODELAY, one write per response) that records for every POST its receive time
          (CLOCK_MONOTONIC, which all processes on the machine share), path, Idempotency-Key,
          signature headers and body. The bench process reads the counts and records over HTTP.
baseline  a plain httpx.Client (keep-alive) in this process posting 3,000 prepared JSON bodies of
          the webhook's shape and size, one after another, to the same receiver: requests/s.
          Measured twice (before and after the portal run) after 200 warm-up requests; the
          figure is all requests over all time of both passes.
portal    one Celery worker (`celery -A opsportal worker -P solo`: one process, one task at a
          time; the engine sends a batch's channels one after another in the task's thread when
          their receivers have been answering fast, else in a thread each), broker Redis on a
          dedicated database number and a private queue, DATABASE_URL = the bench database as
          the least-privilege role opsportal_app (as tests/worker.py starts one). Two runs, each
          of ALERTS tier-1 alerts with distinct dedup keys to 3 webhook channels on 3 paths of
          the receiver, on a tenant of its own:
            one at a time  apps.alerts.services.raise_alert per alert, each in its own
                           transaction, so the outbox hands `alerts.deliver` to Redis on commit
                           as in production;
            bulk           apps.alerts.services.raise_alerts, BENCH_BULK_SIZE (100) alerts a
                           call, each call one transaction (one outbox message per engine
                           batch of deliveries).
          Each run records when the call that raised each alert started, then waits until the
          receiver holds 3,000 distinct deliveries (BENCH_TIMEOUT, default 180 s).
          deliveries/s = 3,000 / (last receipt - first raise); latency = receipt - start of the
          call that raised that alert, per delivery (first receipt of each delivery). Between
          the runs the worker is left to finish the tasks still queued by the first.
reference not the baseline: the same requests sent sequentially through the engine's own HTTP
          client (apps.alerts.transport, http.client), after baseline pass 2, to show how much
          of the ratio is the HTTP client.

Reports, per run, the ratio portal deliveries/s / baseline requests/s (target >= 0.5) and the
p50/p95/max raise-to-receipt latency (target p95 <= 2 s), how many requests the receiver saw
(duplicates), how many Delivery rows ended delivered, and whether the webhook signatures verify.

Diagnostics afterwards (BENCH_DIAGNOSTICS=0 skips them): ALERTS more alerts are raised one at a
time with no worker consuming (time and SQL statements per raise_alert), then an instrumented
worker drains that backlog: deliveries/s with full batches, and where the worker's time goes
per batch (claim, payload build, HTTP in the task's thread or in sending threads, record, task
overhead; SQL statements per step). Then ALERTS more are raised in bulk with no worker (time and
SQL per alert) and drained by a plain worker (the engine's rate without the instruments).

Every process started here (receiver, workers) runs in its own process group and is stopped at
the end, also on failure or SIGTERM. The database is recreated by scripts/pg_setup.sh; the Redis
database BENCH_REDIS_DB is flushed before and after (it is the benchmark's own).
Results: bench/results/alert_fanout.json. Exit status is non-zero only if setup fails.

Env: BENCH_ALERTS (1000), BENCH_BULK_SIZE (100), BENCH_TIMEOUT (180 s), BENCH_REDIS_DB (12),
BENCH_DIAGNOSTICS (1), REDIS_URL (host and port of Redis; default redis://127.0.0.1:6379).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

NAME = "alert_fanout"
ALERTS = int(os.environ.get("BENCH_ALERTS", "1000"))
CHANNELS = 3
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "180"))
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "12"))
DIAGNOSTICS = os.environ.get("BENCH_DIAGNOSTICS", "1") not in ("0", "false", "no", "")
BASELINE_WARMUP = 200
WARMUP_ALERTS = 10
HOST = "127.0.0.1"
SOURCE = "bench.fanout"
WEBHOOK_SECRET = "bench-webhook-signing-secret-0123456789"
BULK_SIZE = int(os.environ.get("BENCH_BULK_SIZE", "100"))
TARGET_RATIO = 0.5
TARGET_P95_S = 2.0
WORKER_POOL = "solo"
WORKER_LOG = common.BENCH_VAR_DIR / "alert_fanout-worker.log"
PROFILED_WORKER_LOG = common.BENCH_VAR_DIR / "alert_fanout-worker-profiled.log"
RECEIVER_LOG = common.BENCH_VAR_DIR / "alert_fanout-receiver.log"
PROFILE_OUT = common.BENCH_VAR_DIR / "alert_fanout-worker-profile.json"


# ---- what an alert looks like (shared by the raise loop and the baseline bodies) --------------
def alert_fields(prefix: str, i: int) -> dict:
    return {
        "dedup_key": f"{prefix}:check-{i:05d}",
        "title": f"Synthetic check {i:05d} failing on payments-api",
        "summary": "Error rate above 5 % for 5 minutes on the checkout path; "
        "p99 latency 2.4 s against an objective of 800 ms.",
        "details": {"check": f"check-{i:05d}", "error_rate": 0.071, "threshold": 0.05, "n": i},
        "links": [{"href": f"https://grafana.example.com/d/abc/{i}", "text": "Dashboard"}],
    }


def baseline_body(i: int) -> bytes:
    """The shape and size of apps.alerts.payloads.webhook_body for one of the bench's alerts."""
    now = datetime.now(UTC).isoformat()
    fields = alert_fields("baseline", i)
    body = {
        "version": "1",
        "event": "trigger",
        "idempotency_key": str(uuid.uuid4()),
        "sent_at": now,
        "tenant": "bench-fanout",
        "title": fields["title"],
        "summary": fields["summary"],
        "tier": 1,
        "alert": {
            "id": 100_000 + i,
            "source": SOURCE,
            "tier": 1,
            "status": "firing",
            "count": 1,
            "first_seen_at": now,
            "last_seen_at": now,
            **fields,
        },
        # a signed ack link is ~180 characters
        "ack_url": "http://127.0.0.1:8000/alerts/ack/" + "x" * 148,
        "digest": None,
        "alerts": [],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signature(body: bytes, stamp: str) -> str:
    digest = hmac.new(WEBHOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


# ---- the receiver (runs as `alert_fanout.py --receiver` in its own process) --------------------
def receiver_main() -> int:
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()
    records: list[tuple] = []
    counts: dict[str, list] = {}  # first path segment -> [requests, {idempotency keys}]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 64 * 1024  # headers and body leave in one write (flushed per request)

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            received = time.monotonic()
            key = self.headers.get("Idempotency-Key", "")
            prefix = self.path.split("/", 2)[1] if self.path.count("/") >= 1 else ""
            with lock:
                records.append(
                    (
                        received,
                        self.path,
                        key,
                        self.headers.get("X-Opsportal-Timestamp", ""),
                        self.headers.get("X-Opsportal-Signature", ""),
                        body,
                    )
                )
                entry = counts.setdefault(prefix, [0, set()])
                entry[0] += 1
                entry[1].add(key)
            self._reply(200, b'{"status":"ok"}')

        def do_GET(self):
            url = urlsplit(self.path)
            prefix = parse_qs(url.query).get("prefix", [""])[0]
            if url.path == "/_count":
                with lock:
                    requests, keys = counts.get(prefix, [0, set()])
                    payload = {"requests": requests, "distinct": len(keys)}
            elif url.path == "/_dump":
                with lock:
                    mine = [r for r in records if r[1].split("/", 2)[1] == prefix]
                payload = [
                    [t, p, k, s, g, b.decode("utf-8", "replace")] for t, p, k, s, g, b in mine
                ]
            elif url.path == "/_cpu":
                times = os.times()
                payload = {"cpu_s": times.user + times.system}
            else:
                self._reply(404, b"{}")
                return
            self._reply(200, json.dumps(payload).encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 64
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.server_port, flush=True)
    server.serve_forever()
    return 0


# ---- the instrumented worker (runs as `alert_fanout.py --profiled-worker OUT -- <celery args>`) -


class SqlCounter:
    """Counts and times SQL statements and commits on this thread's connection, attributed to the
    innermost active segment (segments are pushed by the timing wrappers)."""

    def __init__(self, base_segment: str):
        self.stack = [base_segment]
        self.sql: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))

    def __call__(self, execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = self.sql[self.stack[-1]][common.statement_label(sql)]
            entry[0] += 1
            entry[1] += time.perf_counter() - t0

    def install(self, connection) -> None:
        connection.execute_wrappers.append(self)
        original_commit = connection._commit

        def timed_commit():
            t0 = time.perf_counter()
            try:
                return original_commit()
            finally:
                entry = self.sql[self.stack[-1]]["COMMIT"]
                entry[0] += 1
                entry[1] += time.perf_counter() - t0

        connection._commit = timed_commit

    def summary(self, per: int) -> dict:
        out = {}
        for segment, labels in self.sql.items():
            statements = sum(n for n, _ in labels.values())
            seconds = sum(t for _, t in labels.values())
            out[segment] = {
                "statements_and_commits": statements,
                "per_unit": round(statements / per, 3) if per else None,
                "db_ms_total": round(1000 * seconds, 1),
                "by_statement": {
                    label: {"count": n, "ms_each": round(1000 * t / n, 3)}
                    for label, (n, t) in sorted(labels.items(), key=lambda kv: -kv[1][1])
                },
            }
        return out


def profiled_worker_main(out_path: str, celery_argv: list[str]) -> int:
    import functools

    import django

    django.setup()
    from celery import signals
    from django.db import connection

    from apps.alerts import delivery, payloads, sending
    from opsportal import crypto
    from opsportal.celery import app

    lock = threading.Lock()
    counter = SqlCounter("outside tasks")
    wall: dict[str, list] = defaultdict(lambda: [0, 0.0])
    batch_sizes: list[int] = []
    tasks = {"count": 0, "busy_s": 0.0, "first_start": None, "last_end": None, "_t0": None}
    main_thread = threading.main_thread()

    def timed(name: str, fn, *, on_result=None, by_thread=False, split_empty=False):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            in_main = threading.current_thread() is main_thread
            label = name
            if by_thread:
                label = f"{name} [{'task thread' if in_main else 'sending thread'}]"
            if in_main:
                counter.stack.append(name)
            t0 = time.perf_counter()
            result = None
            try:
                result = fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                if in_main:
                    counter.stack.pop()
                if split_empty and not result:
                    label = f"{name} (nothing due)"
                with lock:
                    entry = wall[label]
                    entry[0] += 1
                    entry[1] += elapsed
            if on_result is not None:
                on_result(result)
            return result

        return wrapper

    delivery._deliver_batch = timed("one batch: claim to record", delivery._deliver_batch)
    delivery.claim = timed(
        "claim",
        delivery.claim,
        on_result=lambda r: batch_sizes.append(len(r)),
        split_empty=True,
    )
    delivery._healths = timed("_healths (breaker rows)", delivery._healths)
    delivery._plan = timed("_plan (breaker state + payloads)", delivery._plan)
    payloads.build = timed("payloads.build", payloads.build)
    payloads.mint = timed("links.mint (sign the ack link)", payloads.mint)
    crypto.decrypt = timed("crypto.decrypt", crypto.decrypt)
    sending.send_all = timed("send_all (every channel of the batch)", sending.send_all)
    sending._send_channel = timed("_send_channel", sending._send_channel, by_thread=True)
    sending._send_http = timed("_send_http (one request)", sending._send_http, by_thread=True)
    delivery._record = timed("_record (attempts, statuses, breaker)", delivery._record)
    delivery._schedule_retries = timed("_schedule_retries", delivery._schedule_retries)
    counter.install(connection)

    @signals.task_prerun.connect(weak=False)
    def _prerun(**_kwargs):
        counter.stack.append("task overhead (RLS scope, record_task_outcome)")
        tasks["_t0"] = time.perf_counter()
        if tasks["first_start"] is None:
            tasks["first_start"] = time.monotonic()

    @signals.task_postrun.connect(weak=False)
    def _postrun(**_kwargs):
        if tasks["_t0"] is not None:
            tasks["busy_s"] += time.perf_counter() - tasks["_t0"]
        tasks["count"] += 1
        tasks["last_end"] = time.monotonic()
        if len(counter.stack) > 1:
            counter.stack.pop()

    def dump(**_kwargs):
        data = {
            "tasks": {k: v for k, v in tasks.items() if not k.startswith("_")},
            "wall": {k: {"calls": n, "s": round(t, 4)} for k, (n, t) in wall.items()},
            "batch_sizes": batch_sizes,
            "sql": counter.summary(1),
            "cpu_s": sum(os.times()[:2]),
        }
        Path(out_path).write_text(json.dumps(data))

    signals.worker_shutdown.connect(dump, weak=False)
    app.worker_main(["worker", *celery_argv])
    return 0


# ---- processes started here --------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def comm_cpu_seconds(names: tuple[str, ...]) -> float:
    """CPU time used so far by every process whose name is one of `names` (e.g. postgres)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.find("(") + 1 : text.rfind(")")]
        if comm in names:
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Child:
    def __init__(self, label: str, cmd: list[str], env: dict[str, str], log_path: Path):
        self.label = label
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, stdout=None) -> None:
        with open(self.log_path, "wb") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=common.REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout or log,
                stderr=log,
                start_new_session=True,  # its own process group: stop() takes all of it down
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # celery: warm shutdown
            self.proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in the group
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def redis_url() -> str:
    base = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379")
    return urlunsplit((base.scheme, base.netloc, f"/{REDIS_DB}", "", ""))


# ---- measurement pieces ------------------------------------------------------------------------
def run_baseline(url: str, count: int) -> dict:
    import httpx

    bodies = [baseline_body(i) for i in range(count)]
    stamp = str(int(time.time()))
    requests = [
        (
            body,
            {
                "Content-Type": "application/json",
                "User-Agent": "opsportal-alerts/1",
                "Idempotency-Key": str(uuid.uuid4()),
                "X-Opsportal-Timestamp": stamp,
                "X-Opsportal-Signature": signature(body, stamp),
            },
        )
        for body in bodies
    ]
    latencies = []
    errors = 0
    with httpx.Client(timeout=10) as client:
        for body, headers in requests[:BASELINE_WARMUP]:
            client.post(url, content=body, headers=headers)
        started = time.perf_counter()
        for body, headers in requests:
            t0 = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            errors += response.status_code != 200
        seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": count,
        "errors": errors,
        "seconds": round(seconds, 3),
        "requests_per_s": round(count / seconds, 1),
        "latency_ms": {
            "p50": round(1000 * common.percentile(latencies, 50), 3),
            "p95": round(1000 * common.percentile(latencies, 95), 3),
            "max": round(1000 * latencies[-1], 3),
        },
        "body_bytes_mean": round(sum(len(b) for b in bodies) / count),
    }


def run_reference(url: str, count: int) -> dict:
    """Not the baseline: the same requests through the client the engine sends with
    (apps.alerts.transport, http.client with kept-alive connections), to show how much of the
    ratio is the HTTP client."""
    from apps.alerts import transport

    bodies = [baseline_body(i) for i in range(count)]
    headers = {"Content-Type": "application/json", "User-Agent": "opsportal-alerts/1"}
    pool = transport.Pool(10)
    for body in bodies[:BASELINE_WARMUP]:
        pool.post(url, body, headers)
    started = time.perf_counter()
    errors = sum(pool.post(url, body, headers).status_code != 200 for body in bodies)
    seconds = time.perf_counter() - started
    pool.close()
    return {
        "client": "apps.alerts.transport.Pool (http.client, keep-alive), sequential",
        "requests": count,
        "errors": errors,
        "seconds": round(seconds, 3),
        "requests_per_s": round(count / seconds, 1),
    }


def summarize(values: list[float], scale: float = 1000.0, digits: int = 1) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": round(scale * common.percentile(ordered, 50), digits),
        "p95": round(scale * common.percentile(ordered, 95), digits),
        "max": round(scale * ordered[-1], digits),
        "mean": round(scale * sum(ordered) / len(ordered), digits),
    }


def main() -> int:
    common.log(
        f"{NAME}: {ALERTS} tier-1 alerts x {CHANNELS} webhook channels, one worker "
        f"(-P {WORKER_POOL}), vs a plain httpx client"
    )
    started_all = time.perf_counter()
    machine = common.machine()
    broker = redis_url()
    queue = f"bench-alert-fanout-{os.getpid()}"
    try:
        import redis

        redis_client = redis.Redis.from_url(broker, socket_timeout=5)
        redis_client.ping()
    except Exception as exc:
        sys.exit(f"setup failed: Redis at {broker} is not reachable: {exc!r}")
    redis_client.flushdb()  # BENCH_REDIS_DB is the benchmark's own database number

    common.setup_database()
    os.environ.update({"REDIS_URL": broker, "CELERY_BROKER_URL": broker, "CELERY_QUEUE": queue})
    common.configure_django()

    import httpx
    from django.db import connection
    from django.db.models import Avg, Count

    from apps.alerts.models import Delivery, DeliveryAttempt
    from apps.alerts.policies import policy_for
    from apps.alerts.services import raise_alert, raise_alerts
    from apps.tenancy import rls
    from apps.tenancy.services import create_tenant

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, version()")
        db_user, db_version = cursor.fetchone()
    common.log(f"connected as {db_user}; broker {broker}, queue {queue}")

    worker_env = {**common.production_env(common.APP_URL), **os.environ}
    worker_env.update({"REDIS_URL": broker, "CELERY_BROKER_URL": broker, "CELERY_QUEUE": queue})
    worker_args = [
        "-P",
        WORKER_POOL,
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--loglevel=WARNING",
    ]
    worker_cmd = [common.PYTHON, "-m", "celery", "-A", "opsportal", "worker", *worker_args]
    receiver = Child(
        "receiver",
        [common.PYTHON, str(Path(__file__).resolve()), "--receiver"],
        worker_env,
        RECEIVER_LOG,
    )
    worker = Child("worker", worker_cmd, worker_env, WORKER_LOG)
    profiled = Child(
        "profiled worker",
        [
            common.PYTHON,
            str(Path(__file__).resolve()),
            "--profiled-worker",
            str(PROFILE_OUT),
            "--",
            *worker_args,
        ],
        worker_env,
        PROFILED_WORKER_LOG,
    )
    children = [worker, profiled, receiver]

    def stop_all() -> None:
        for child in children:
            child.stop()

    def on_signal(signum, frame):  # make Ctrl-C / kill run the finally below
        raise SystemExit(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(stop_all)

    def make_tenant(slug: str, prefix: str):
        from apps.alerts.models import Channel
        from apps.alerts.services import save_channel

        with rls.all_tenants_context():
            tenant = create_tenant(slug=slug, name=f"Bench {slug}")
        with rls.tenant_context(tenant):
            for n in range(1, CHANNELS + 1):
                save_channel(
                    Channel(
                        tenant=tenant,
                        name=f"webhook-{n}",
                        kind="webhook",
                        url=f"{base_url}/{prefix}/hook-{n}",
                    ),
                    secret=WEBHOOK_SECRET,
                )
            policy_for(tenant, 1)
        return tenant

    def raise_all(
        tenant, prefix: str, count: int, bulk: int = 0
    ) -> tuple[dict[str, float], list[float]]:
        """Raise `count` alerts: one raise_alert call each, or (bulk > 0) raise_alerts calls of
        `bulk` alerts each. Returns when each alert's call started, and each call's duration."""
        raised_at: dict[str, float] = {}
        durations: list[float] = []
        with rls.tenant_context(tenant):
            for start in range(0, count, bulk or 1):
                chunk = [
                    alert_fields(prefix, i) for i in range(start, min(count, start + (bulk or 1)))
                ]
                t0 = time.monotonic()
                if bulk:
                    results = raise_alerts(
                        tenant, [{"source": SOURCE, "tier": 1, **f} for f in chunk]
                    )
                else:
                    results = [raise_alert(tenant, SOURCE, 1, **chunk[0])]
                durations.append(time.monotonic() - t0)
                for fields, result in zip(chunk, results, strict=True):
                    raised_at[fields["dedup_key"]] = t0
                    if not result.created or result.deliveries != CHANNELS:
                        raise RuntimeError(
                            f"raise gave created={result.created}, "
                            f"deliveries={result.deliveries} for {fields['dedup_key']}"
                        )
        return raised_at, durations

    def wait_for(prefix: str, expected: int, timeout: float, child: Child) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = control.get(f"/_count?prefix={prefix}").json()
            if count["distinct"] >= expected:
                return True
            if not child.alive():
                raise RuntimeError(f"{child.label} exited:\n{child.tail()}")
            time.sleep(0.05)
        return False

    def deliveries_by_status(tenant) -> dict[str, int]:
        with rls.all_tenants_context():
            rows = (
                Delivery.objects.filter(tenant=tenant)
                .values_list("status")
                .annotate(n=Count("id"))
                .order_by()
            )
            return dict(rows)

    def receipts(prefix: str) -> list[dict]:
        out = []
        for t, path, key, stamp, sig, body in control.get(f"/_dump?prefix={prefix}").json():
            out.append({"t": t, "path": path, "key": key, "stamp": stamp, "sig": sig, "body": body})
        return out

    def analyse(prefix: str, raised_at: dict[str, float], expected: int) -> dict:
        got = receipts(prefix)
        first: dict[str, dict] = {}
        for r in sorted(got, key=lambda r: r["t"]):
            first.setdefault(r["key"], r)
        latencies = []
        bad_signatures = 0
        unknown = 0
        for r in first.values():
            if not hmac.compare_digest(r["sig"], signature(r["body"].encode(), r["stamp"])):
                bad_signatures += 1
            dedup_key = (json.loads(r["body"]).get("alert") or {}).get("dedup_key")
            if dedup_key not in raised_at:
                unknown += 1
                continue
            latencies.append(r["t"] - raised_at[dedup_key])
        missing = expected - len(first)
        per_path = Counter(r["path"] for r in got)
        times = [r["t"] for r in first.values()]
        return {
            "requests_seen": len(got),
            "distinct_deliveries": len(first),
            "duplicates": len(got) - len(first),
            "missing": max(0, missing),
            "unknown_alert": unknown,
            "bad_signatures": bad_signatures,
            "requests_per_path": dict(sorted(per_path.items())),
            "first_receipt": min(times) if times else None,
            "last_receipt": max(times) if times else None,
            "latencies": latencies,
            "body_bytes_mean": round(sum(len(r["body"]) for r in got) / len(got)) if got else 0,
        }

    def engine_view(tenant) -> dict:
        """What the database says: delivered_at - created_at, and the worker's HTTP time."""
        with rls.all_tenants_context():
            spans = [
                (d - c).total_seconds()
                for c, d in Delivery.objects.filter(tenant=tenant, delivered_at__isnull=False)
                .values_list("created_at", "delivered_at")
                .order_by()
            ]
            attempts = DeliveryAttempt.objects.filter(tenant=tenant).aggregate(
                n=Count("id"), ms=Avg("duration_ms")
            )
            # _record stamps one `now` per channel and batch: distinct (channel, delivered_at)
            # pairs are the channel batches the engine sent.
            channel_batches = (
                Delivery.objects.filter(tenant=tenant, delivered_at__isnull=False)
                .values("channel_id", "delivered_at")
                .distinct()
                .count()
            )
        return {
            "created_to_delivered_ms": summarize(spans),
            "attempts": attempts["n"],
            "attempt_duration_ms_mean": round(attempts["ms"] or 0, 2),
            "channel_batches": channel_batches,
            "deliveries_per_channel_batch": round(len(spans) / channel_batches, 2)
            if channel_batches
            else None,
        }

    def deliver_tasks_run() -> int:
        from apps.core.models import TaskOutcome

        return sum(
            TaskOutcome.objects.filter(task_name="alerts.deliver").values_list("count", flat=True)
        )

    result: dict = {}
    try:
        receiver.start(stdout=subprocess.PIPE)
        port_line = receiver.proc.stdout.readline().strip()
        if not port_line.isdigit():
            raise RuntimeError(f"receiver did not start:\n{receiver.tail()}")
        base_url = f"http://{HOST}:{int(port_line)}"
        control = httpx.Client(base_url=base_url, timeout=30)
        common.log(f"receiver (pid {receiver.proc.pid}) on {base_url}")

        expected = ALERTS * CHANNELS
        common.log(f"baseline pass 1: {expected} sequential POSTs with httpx.Client")
        baseline_1 = run_baseline(f"{base_url}/baseline1/hook", expected)
        common.log(f"  {baseline_1['requests_per_s']} req/s")

        warm_tenant = make_tenant("bench-warmup", "warmup")
        run_tenant = make_tenant("bench-fanout", "run")
        bulk_tenant = make_tenant("bench-fanout-bulk", "bulk")
        drain_tenant = make_tenant("bench-drain", "drain") if DIAGNOSTICS else None
        drain_bulk_tenant = make_tenant("bench-drain-bulk", "drainbulk") if DIAGNOSTICS else None

        worker.start()
        common.log(f"worker (pid {worker.proc.pid}): {' '.join(worker_cmd[1:])}")
        raise_all(warm_tenant, "warmup", WARMUP_ALERTS // 2)
        with rls.tenant_context(warm_tenant):  # and the bulk path
            raise_alerts(
                warm_tenant,
                [
                    {"source": SOURCE, "tier": 1, **alert_fields("warmup", i)}
                    for i in range(WARMUP_ALERTS // 2, WARMUP_ALERTS)
                ],
            )
        if not wait_for("warmup", WARMUP_ALERTS * CHANNELS, 90, worker):
            raise RuntimeError(f"warm-up deliveries did not arrive in 90 s:\n{worker.tail()}")
        common.log(f"worker warm ({WARMUP_ALERTS} alerts delivered)")
        time.sleep(1)

        def cpu_now() -> dict[str, float]:
            return {
                "bench_process": sum(os.times()[:2]),
                "worker": proc_cpu_seconds(worker.proc.pid),
                "receiver": control.get("/_cpu").json()["cpu_s"],
                "postgres": comm_cpu_seconds(("postgres",)),
                "redis": comm_cpu_seconds(("redis-server",)),
            }

        def portal_run(tenant, prefix: str, bulk: int) -> dict:
            """Raise ALERTS alerts (one at a time, or in raise_alerts calls of `bulk`) with the
            worker running; wait for every delivery; the run's figures."""
            cpu_before = cpu_now()
            load_before = os.getloadavg()
            tasks_before = deliver_tasks_run()
            how = f"raise_alerts, {bulk} a call" if bulk else "raise_alert, one at a time"
            common.log(f"portal run ({how}): raising {ALERTS} alerts")
            raised_at, raise_durations = raise_all(tenant, prefix, ALERTS, bulk)
            raise_end = time.monotonic()
            first_raise = min(raised_at.values())
            common.log(
                f"  raised in {raise_end - first_raise:.2f} s; waiting for {expected} deliveries"
            )
            complete = wait_for(prefix, expected, TIMEOUT, worker)
            waited_until = time.monotonic()
            cpu_after = cpu_now()
            load_after = os.getloadavg()
            time.sleep(2)  # let late duplicates, if any, show up
            run = analyse(prefix, raised_at, expected)
            statuses = deliveries_by_status(tenant)
            engine = engine_view(tenant)
            engine["deliver_tasks_run"] = deliver_tasks_run() - tasks_before
            common.log(
                f"  {run['distinct_deliveries']}/{expected} delivered "
                f"({'complete' if complete else f'TIMEOUT after {TIMEOUT:g} s'})"
            )
            last_receipt = run["last_receipt"] or waited_until
            span = last_receipt - first_raise
            # A delivery that never arrived counts as slower than everything that did.
            latencies = sorted(run["latencies"]) + [float("inf")] * run["missing"]
            p95 = common.percentile(latencies, 95)
            latency = summarize(run["latencies"])
            latency["p95_counting_missing"] = round(1000 * p95, 1) if p95 != float("inf") else None
            raise_span = raise_end - first_raise
            return {
                "raised_with": how,
                "alerts_per_call": bulk or 1,
                "complete": complete,
                "deliveries_per_s": round(run["distinct_deliveries"] / span if span > 0 else 0, 1),
                "first_raise_to_last_receipt_s": round(span, 3),
                "raise_phase": {
                    "seconds": round(raise_span, 3),
                    "alerts_per_s": round(ALERTS / raise_span, 1),
                    "calls": len(raise_durations),
                    "call_ms": summarize(raise_durations, digits=2),
                },
                "first_receipt_after_first_raise_s": round(run["first_receipt"] - first_raise, 3)
                if run["first_receipt"]
                else None,
                "last_receipt_after_last_raise_returned_s": round(last_receipt - raise_end, 3),
                "raise_to_receipt_latency_ms": latency,
                "p95_s": p95,
                "receiver": {k: run[k] for k in run if k not in ("latencies",)},
                "delivery_rows_by_status": statuses,
                "delivered_rows": statuses.get("delivered", 0),
                "engine_view": engine,
                "cpu_s_during_run": {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_before},
                "loadavg_before_after": [load_before, load_after],
            }

        single = portal_run(run_tenant, "run", 0)
        # The one-at-a-time run leaves tasks queued that find nothing left to send (an earlier
        # task's batch took their deliveries): let the worker get through them first.
        deadline = time.monotonic() + 60
        while redis_client.llen(queue) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        bulk = portal_run(bulk_tenant, "bulk", BULK_SIZE)
        worker.stop()
        common.log("worker stopped")

        common.log(f"baseline pass 2: {expected} sequential POSTs with httpx.Client")
        baseline_2 = run_baseline(f"{base_url}/baseline2/hook", expected)
        common.log(f"  {baseline_2['requests_per_s']} req/s")
        reference = run_reference(f"{base_url}/reference/hook", expected)
        common.log(
            f"reference (engine's HTTP client, sequential): {reference['requests_per_s']} req/s"
        )

        diagnostics = None
        if DIAGNOSTICS:
            diagnostics = run_diagnostics(
                drain_tenant,
                drain_bulk_tenant,
                raise_all,
                wait_for,
                analyse,
                engine_view,
                profiled,
                worker,
                connection,
            )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(f"setup failed: {exc}".splitlines()[0])
    finally:
        stop_all()
        with contextlib.suppress(Exception):
            redis_client.flushdb()
        common.log("worker and receiver stopped")

    # ---- figures ---------------------------------------------------------------------------
    base_requests = baseline_1["requests"] + baseline_2["requests"]
    base_seconds = baseline_1["seconds"] + baseline_2["seconds"]
    baseline_rate = base_requests / base_seconds
    ratio = single["deliveries_per_s"] / baseline_rate
    ratio_bulk = bulk["deliveries_per_s"] / baseline_rate
    p95 = single.pop("p95_s")
    p95_bulk = bulk.pop("p95_s")

    result = {
        "description": f"{ALERTS} tier-1 alerts x {CHANNELS} signed webhook channels through one "
        "Celery worker to a local receiver, vs a plain httpx client posting the same number of "
        "requests sequentially; same run",
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "database": {"name": common.BENCH_DB, "user": db_user, "server": db_version},
        "broker": {"url": broker, "queue": queue},
        "worker": {
            "pool": WORKER_POOL,
            "concurrency": 1,
            "command": " ".join(["celery", *worker_cmd[3:]]),
            "database_role": "opsportal_app",
            "note": "one process running one task at a time; the engine sends each batch's "
            "channels one after another in the task's thread when their receivers have been "
            "answering fast, else in a thread per channel",
        },
        "receiver": "separate process, http.server.ThreadingHTTPServer, HTTP/1.1 keep-alive",
        "alerts": ALERTS,
        "channels": CHANNELS,
        "bulk_size": BULK_SIZE,
        "expected_deliveries": expected,
        "baseline": {
            "client": "httpx.Client, keep-alive, sequential, prepared bodies",
            "passes": [baseline_1, baseline_2],
            "requests_per_s": round(baseline_rate, 1),
        },
        "reference_engine_client": {
            **reference,
            "ratio_portal_bulk_to_it": round(
                bulk["deliveries_per_s"] / reference["requests_per_s"], 3
            ),
            "note": "not the baseline: the same requests sent sequentially with the engine's own "
            "HTTP client, measured after baseline pass 2",
        },
        "portal": single,
        "portal_bulk": bulk,
        "ratio_portal_to_baseline": round(ratio, 3),
        "ratio_portal_bulk_to_baseline": round(ratio_bulk, 3),
        "target_ratio": TARGET_RATIO,
        "target_ratio_met": ratio >= TARGET_RATIO,
        "target_ratio_met_bulk": ratio_bulk >= TARGET_RATIO,
        "target_p95_s": TARGET_P95_S,
        "target_p95_met": p95 <= TARGET_P95_S,
        "target_p95_met_bulk": p95_bulk <= TARGET_P95_S,
        "diagnostics": diagnostics,
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)
    print_report(result)
    return 0


def run_diagnostics(
    tenant, bulk_tenant, raise_all, wait_for, analyse, engine_view, profiled, worker, connection
):
    """A backlog of ALERTS alerts raised one at a time with no worker running (raise cost in
    isolation), drained by an instrumented worker (engine throughput with full batches, time per
    step); then a backlog raised in bulk (raise_alerts cost in isolation), drained by a plain
    worker (engine throughput without the instruments' overhead)."""
    expected = ALERTS * CHANNELS
    common.log(f"diagnostics: raising {ALERTS} alerts with no worker consuming (SQL counted)")
    raise_single = _measure_raise(tenant, "drain", 0, raise_all, connection)
    raised_at = raise_single.pop("raised_at")

    PROFILE_OUT.unlink(missing_ok=True)
    profiled.start()
    common.log(f"  instrumented worker (pid {profiled.proc.pid}) draining the backlog")
    drain = _drain("drain", raised_at, expected, profiled, wait_for, analyse)
    drain["engine_view"] = engine_view(tenant)
    drain["note"] = "instrumented worker (a timer around each engine step and SQL statement)"
    profiled.stop(timeout=30)
    profile = json.loads(PROFILE_OUT.read_text()) if PROFILE_OUT.exists() else None

    common.log(
        f"diagnostics: raising {ALERTS} alerts in raise_alerts calls of {BULK_SIZE}, "
        "no worker consuming (SQL counted)"
    )
    raise_bulk = _measure_raise(bulk_tenant, "drainbulk", BULK_SIZE, raise_all, connection)
    raised_at = raise_bulk.pop("raised_at")
    worker.start()
    common.log(f"  plain worker (pid {worker.proc.pid}) draining that backlog")
    drain_plain = _drain("drainbulk", raised_at, expected, worker, wait_for, analyse)
    drain_plain["engine_view"] = engine_view(bulk_tenant)
    drain_plain["note"] = "the same worker as the portal runs, no instruments"
    worker.stop()

    out = {
        "raise_without_worker": raise_single,
        "raise_alerts_without_worker": raise_bulk,
        "backlog_drain": drain,
        "backlog_drain_plain_worker": drain_plain,
    }
    if profile:
        out["worker_profile"] = _profile_summary(profile, drain["distinct_deliveries"])
    else:
        out["worker_profile"] = {"error": f"no profile written; see {PROFILED_WORKER_LOG}"}
    return out


def _measure_raise(tenant, prefix: str, bulk: int, raise_all, connection) -> dict:
    from apps.core import services as core_services

    counter = SqlCounter("raise_alerts (transaction)" if bulk else "raise_alert (transaction)")
    dispatch_wall = [0, 0.0]
    original_dispatch = core_services.dispatch

    def timed_dispatch(message_id):
        counter.stack.append("outbox dispatch on commit (publish to Redis)")
        t0 = time.perf_counter()
        try:
            return original_dispatch(message_id)
        finally:
            dispatch_wall[0] += 1
            dispatch_wall[1] += time.perf_counter() - t0
            counter.stack.pop()

    core_services.dispatch = timed_dispatch
    counter.install(connection)
    try:
        t0 = time.monotonic()
        raised_at, durations = raise_all(tenant, prefix, ALERTS, bulk)
        raise_s = time.monotonic() - t0
    finally:
        core_services.dispatch = original_dispatch
        connection.execute_wrappers.remove(counter)
        del connection._commit
    common.log(f"  raised in {raise_s:.2f} s ({ALERTS / raise_s:.0f} alerts/s, no worker running)")
    return {
        "raised_at": raised_at,
        "alerts_per_call": bulk or 1,
        "seconds": round(raise_s, 3),
        "alerts_per_s": round(ALERTS / raise_s, 1),
        "ms_per_alert": round(1000 * raise_s / ALERTS, 3),
        "call_ms": summarize(durations, digits=2),
        "outbox_dispatches": dispatch_wall[0],
        "outbox_dispatch_ms_mean": round(1000 * dispatch_wall[1] / max(1, dispatch_wall[0]), 3),
        "sql_per_alert": counter.summary(ALERTS),
    }


def _drain(prefix: str, raised_at, expected: int, child, wait_for, analyse) -> dict:
    started = time.monotonic()
    complete = wait_for(prefix, expected, TIMEOUT, child)
    time.sleep(1)
    drain = analyse(prefix, raised_at, expected)
    span = (drain["last_receipt"] or time.monotonic()) - (drain["first_receipt"] or started)
    rate = drain["distinct_deliveries"] / span if span > 0 else 0.0
    common.log(f"  drained {drain['distinct_deliveries']}/{expected} at {rate:.0f} deliveries/s")
    return {
        "complete": complete,
        "deliveries_per_s": round(rate, 1),
        "first_to_last_receipt_s": round(span, 3),
        "worker_start_to_first_receipt_s": round(drain["first_receipt"] - started, 3)
        if drain["first_receipt"]
        else None,
        "receiver": {k: drain[k] for k in drain if k != "latencies"},
        "distinct_deliveries": drain["distinct_deliveries"],
    }


def _profile_summary(profile: dict, deliveries: int) -> dict:
    tasks = profile["tasks"]
    sizes = profile["batch_sizes"]
    nonempty = [s for s in sizes if s]
    per = max(1, deliveries)
    span = (
        tasks["last_end"] - tasks["first_start"]
        if tasks.get("first_start") and tasks.get("last_end")
        else None
    )
    steps = {
        name: {
            "calls": v["calls"],
            "total_s": v["s"],
            "ms_per_delivery": round(1000 * v["s"] / per, 3),
        }
        for name, v in sorted(profile["wall"].items(), key=lambda kv: -kv[1]["s"])
    }
    sql = {
        segment: {
            "statements_and_commits": v["statements_and_commits"],
            "per_delivery": round(v["statements_and_commits"] / per, 2),
            "db_ms_per_delivery": round(v["db_ms_total"] / per, 3),
            "by_statement": v["by_statement"],
        }
        for segment, v in profile["sql"].items()
    }
    return {
        "tasks": tasks["count"],
        "tasks_with_work": len(nonempty),
        "batch_size_mean": round(sum(nonempty) / len(nonempty), 1) if nonempty else 0,
        "first_task_start_to_last_task_end_s": round(span, 3) if span else None,
        "task_body_s": round(tasks["busy_s"], 3),
        "worker_cpu_s_total": round(profile["cpu_s"], 2),
        "steps": steps,
        "sql_by_step": sql,
    }


def print_report(r: dict) -> None:
    b = r["baseline"]
    print()
    print(
        f"alert_fanout ({r['alerts']} tier-1 alerts x {r['channels']} webhook channels, "
        f"one worker: celery -P {r['worker']['pool']}, {r['machine']['cpus']} CPUs)"
    )
    for i, run in enumerate(b["passes"], 1):
        print(
            f"  baseline pass {i} (httpx, sequential, keep-alive): {run['requests_per_s']:8.1f} "
            f"req/s  p50 {run['latency_ms']['p50']:.2f} ms  p95 {run['latency_ms']['p95']:.2f} ms"
            f"  ({run['errors']} errors, {run['body_bytes_mean']} B bodies)"
        )
    print(f"  baseline, both passes:                          {b['requests_per_s']:8.1f} req/s")
    ref = r["reference_engine_client"]
    print(
        f"  reference, not the baseline: the engine's HTTP client (http.client), sequential: "
        f"{ref['requests_per_s']:8.1f} req/s (bulk portal run / it: {ref['ratio_portal_bulk_to_it']})"
    )
    for key, ratio_key, met_key, p95_key in (
        ("portal", "ratio_portal_to_baseline", "target_ratio_met", "target_p95_met"),
        (
            "portal_bulk",
            "ratio_portal_bulk_to_baseline",
            "target_ratio_met_bulk",
            "target_p95_met_bulk",
        ),
    ):
        _print_run(r, r[key], r[ratio_key], r[met_key], r[p95_key])
    d = r.get("diagnostics")
    if not d:
        return
    for key in ("raise_without_worker", "raise_alerts_without_worker"):
        raise_diag = d[key]
        print(
            f"  diagnostics: {raise_diag['alerts_per_call']} alert(s) a call, no worker: "
            f"{raise_diag['alerts_per_s']} alerts/s ({raise_diag['ms_per_alert']} ms an alert), "
            f"call p50 {raise_diag['call_ms']['p50']} ms; {raise_diag['outbox_dispatches']} outbox "
            f"dispatches of {raise_diag['outbox_dispatch_ms_mean']} ms"
        )
        for segment, v in raise_diag["sql_per_alert"].items():
            print(f"    {segment}: {v['per_unit']} statements+commits per alert")
            for label, s in list(v["by_statement"].items())[:12]:
                print(f"      {s['count'] / r['alerts']:6.3f} x {s['ms_each']:6.3f} ms  {label}")
    drain = d["backlog_drain"]
    print(
        f"  backlog drain (instrumented worker, full batches): {drain['deliveries_per_s']} "
        f"deliveries/s ({drain['receiver']['distinct_deliveries']} in "
        f"{drain['first_to_last_receipt_s']} s)"
    )
    prof = d.get("worker_profile") or {}
    if "steps" in prof:
        print(
            f"    {prof['tasks']} tasks, {prof['tasks_with_work']} with work, mean batch "
            f"{prof['batch_size_mean']}; worker CPU {prof['worker_cpu_s_total']} s in all"
        )
        print("    time per delivery by engine step (nested: a batch includes the rest):")
        for name, s in prof["steps"].items():
            print(f"      {s['ms_per_delivery']:8.3f} ms  {name} ({s['calls']} calls)")
        print("    SQL per delivery by step:")
        for segment, v in prof["sql_by_step"].items():
            print(
                f"      {v['per_delivery']:6.2f} statements, {v['db_ms_per_delivery']:.3f} ms "
                f"in the driver  {segment}"
            )
            for label, s in list(v["by_statement"].items())[:6]:
                print(f"          {s['count']:6d} x {s['ms_each']:6.3f} ms  {label}")
    elif prof:
        print(f"    worker profile: {prof.get('error')}")
    drain = d["backlog_drain_plain_worker"]
    print(
        f"  backlog drain (plain worker, full batches): {drain['deliveries_per_s']} "
        f"deliveries/s ({drain['receiver']['distinct_deliveries']} in "
        f"{drain['first_to_last_receipt_s']} s)"
    )


def _print_run(r: dict, p: dict, ratio: float, ratio_met: bool, p95_met: bool) -> None:
    lat = p["raise_to_receipt_latency_ms"]
    rec = p["receiver"]
    print(
        f"  portal, {p['raised_with']}: {p['deliveries_per_s']:8.1f} deliveries/s  "
        f"({rec['distinct_deliveries']} deliveries, first raise -> last receipt "
        f"{p['first_raise_to_last_receipt_s']:.2f} s{'' if p['complete'] else ', INCOMPLETE'})"
    )
    print(
        f"    raising: {p['raise_phase']['seconds']:.2f} s = {p['raise_phase']['alerts_per_s']} "
        f"alerts/s, {p['raise_phase']['calls']} calls, p50 {p['raise_phase']['call_ms']['p50']} ms "
        f"p95 {p['raise_phase']['call_ms']['p95']} ms; last receipt "
        f"{p['last_receipt_after_last_raise_returned_s']:.2f} s after the last raise returned"
    )
    print(
        f"    ratio to baseline: {ratio:.3f} "
        f"(target >= {r['target_ratio']}: {'met' if ratio_met else 'NOT met'})"
    )
    print(
        f"    raise -> receipt latency: p50 {lat.get('p50')} ms  p95 {lat.get('p95')} ms  "
        f"max {lat.get('max')} ms (target p95 <= {r['target_p95_s']:g} s: "
        f"{'met' if p95_met else 'NOT met'})"
    )
    print(
        f"    receiver saw {rec['requests_seen']} requests: {rec['distinct_deliveries']} distinct, "
        f"{rec['duplicates']} duplicates, {rec['missing']} missing, "
        f"{rec['bad_signatures']} bad signatures, {rec['body_bytes_mean']} B bodies"
    )
    print(
        f"    Delivery rows: {p['delivery_rows_by_status']}; worker HTTP time per attempt "
        f"{p['engine_view']['attempt_duration_ms_mean']} ms; created -> delivered p95 "
        f"{p['engine_view']['created_to_delivered_ms'].get('p95')} ms"
    )
    print(
        f"    worker ran {p['engine_view']['deliver_tasks_run']} alerts.deliver tasks; "
        f"{p['engine_view']['channel_batches']} channel batches of "
        f"{p['engine_view']['deliveries_per_channel_batch']} deliveries on average"
    )
    print(f"    CPU seconds during the run: {p['cpu_s_during_run']}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--receiver"]:
        sys.exit(receiver_main())
    if sys.argv[1:2] == ["--profiled-worker"]:
        argv = sys.argv[3:]
        sys.exit(profiled_worker_main(sys.argv[2], argv[1:] if argv[:1] == ["--"] else argv))
    sys.exit(main())
