"""The HTTP floor: the portal's /healthz under gunicorn vs a bare WSGI app under the same gunicorn.

Both servers run in the same run on this machine with the same gunicorn settings: the project's
gunicorn.conf.py (as production loads it), pinned on the command line to `--workers 2
--worker-class sync` on 127.0.0.1 (random free ports), access log to stdout as in the Dockerfile
(captured in var/bench/), PROMETHEUS_MULTIPROC_DIR set as scripts/run.sh does. The portal runs
in production mode (DEBUG off, the full middleware stack, whitenoise with collected static files,
DATABASE_URL = the bench database as the least-privilege role opsportal_app); /healthz itself
does not touch the database. The bare app (bench/_hello_wsgi.py) answers the same 200 with the
same JSON body.

Load: 32 concurrent connections, closed loop, from `wrk` (-t2 -c32) when it is installed,
otherwise from the built-in asyncio client (one request per connection, `Connection: close`);
both targets always get the same client. After a 2 s warm-up each, the targets are measured in
alternating rounds (bare, portal, portal, bare, ...), BENCH_DURATION seconds per target in total
(default 10), so background load on the machine hits both alike. The load generator shares the
machine's CPUs with the servers, so absolute figures are below what a separate load host would
see; the ratio is the figure to compare.

Reports requests/s, p50/p95 latency for both and the ratio portal/bare (target >= 50 %). It then
profiles /healthz in-process (no HTTP): time per request through the WSGI handler, the cost of
each middleware (time with all minus time without it) and the cProfile top functions.
Later benchmarks use the /healthz figure as the HTTP floor: no portal endpoint can be faster.

Results: bench/results/http_floor.json. Exit status is non-zero only if setup fails; gunicorn
processes are always stopped when the script ends.

Env: BENCH_DURATION (s per target, default 10), BENCH_ROUNDS (default 5),
BENCH_CLIENT (wrk | python; default wrk if installed), BENCH_CONCURRENCY (default 32).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

NAME = "http_floor"
DURATION = float(os.environ.get("BENCH_DURATION", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
WARMUP = 2.0
WORKERS = 2
PATH = "/healthz"
HOST = "127.0.0.1"
TARGET_RATIO = 0.50
# The project's gunicorn settings (production and `make run` load this file); both servers get
# it, and the command line pins what this benchmark is about.
GUNICORN_CONF = common.REPO / "gunicorn.conf.py"
PROMETHEUS_DIR = common.BENCH_VAR_DIR / "prometheus"

WRK_LUA = r"""
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,' ..
    '"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max))
end
"""


# ---- servers -----------------------------------------------------------------------------------
class Server:
    def __init__(self, label: str, app: str, extra_args: list[str], env: dict[str, str]):
        self.label = label
        self.port = common.free_port(HOST)
        self.log_path = common.BENCH_VAR_DIR / f"gunicorn-{label}.log"
        self.access_log_path = common.BENCH_VAR_DIR / f"gunicorn-{label}-access.log"
        config = ["--config", str(GUNICORN_CONF)] if GUNICORN_CONF.exists() else []
        self.cmd = [
            str(common.VENV_BIN / "gunicorn"),
            app,
            *config,
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--chdir",
            str(common.REPO),
            "--log-level",
            "warning",
            "--error-logfile",
            str(self.log_path),
            "--access-logfile",  # as in production (Dockerfile, compose.yaml): to stdout
            "-",
            *extra_args,
        ]
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"

    def start(self) -> None:
        # Its own process group, so stop() can take the workers down with the arbiter.
        with open(self.access_log_path, "wb") as access_log:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=common.REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=access_log,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} gunicorn exited {self.proc.returncode}; "
                    f"see {self.log_path}:\n{common.tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:  # noqa: S310 (http://127.0.0.1 only)
                    body = response.read()
                    if response.status == 200 and b'"ok"' in body:
                        return {
                            "status": response.status,
                            "body_bytes": len(body),
                            "headers": sorted(response.headers.keys()),
                        }
                    last_error = f"{response.status} {body[:200]!r}"
            except Exception as exc:  # not listening yet, or an error status
                last_error = repr(exc)
            time.sleep(0.25)
        raise RuntimeError(
            f"{self.label} not ready after {timeout} s: {last_error}\n{common.tail(self.log_path)}"
        )

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the arbiter and its workers (Linux /proc)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process went away
            if int(fields[2]) == self.proc.pid:  # process group = the arbiter's pid
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGINT)  # gunicorn: quick shutdown
            self.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in the group
            self.proc.wait(timeout=10)


# ---- load generators ---------------------------------------------------------------------------
class WrkClient:
    name = "wrk"
    note = ""

    def __init__(self, binary: str):
        self.binary = binary
        fd, self.script = tempfile.mkstemp(suffix=".lua", prefix="bench-wrk-")
        with os.fdopen(fd, "w") as script:
            script.write(WRK_LUA)
        atexit.register(os.unlink, self.script)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True)
        self.version = (version.stdout or version.stderr).splitlines()[0].strip()

    def run(self, url: str, seconds: float) -> dict:
        threads = min(2, CONCURRENCY)
        cmd = [
            self.binary,
            f"-t{threads}",
            f"-c{CONCURRENCY}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-s",
            self.script,
            url,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        return common.wrk_result(proc)


class PythonClient:
    """Closed-loop asyncio client: CONCURRENCY connections, one GET per connection."""

    name = "python-asyncio"
    version = f"python {sys.version.split()[0]}"
    note = (
        "fallback client: one Python process saturates near 3,000 req/s here, so the bare "
        "app's figure is client-bound and the ratio is overstated; install wrk for the figure"
    )

    def run(self, url: str, seconds: float) -> dict:
        return asyncio.run(self._run(url, seconds))

    async def _run(self, url: str, seconds: float) -> dict:
        port = int(url.split(":")[2].split("/")[0])
        request = (
            f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
        ).encode()
        latencies: list[float] = []
        errors = 0
        started = time.perf_counter()
        deadline = started + seconds

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    reader, writer = await asyncio.open_connection(HOST, port)
                    writer.write(request)
                    data = await asyncio.wait_for(reader.read(), timeout=5)
                    writer.close()
                    if data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"):
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors += 1
                except (TimeoutError, OSError):
                    errors += 1

        await asyncio.gather(*(one_client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        ordered = sorted(latencies)
        return {
            "requests": len(latencies),
            "seconds": elapsed,
            "errors": errors,
            "error_detail": {},
            "p50_ms": 1000 * common.percentile(ordered, 50),
            "p95_ms": 1000 * common.percentile(ordered, 95),
            "p99_ms": 1000 * common.percentile(ordered, 99),
            "latencies": latencies,
        }


def choose_client():
    wanted = os.environ.get("BENCH_CLIENT", "wrk")
    binary = shutil.which("wrk")
    if wanted == "wrk" and binary:
        return WrkClient(binary)
    if wanted == "wrk":
        common.log("wrk not installed (apt-get install -y wrk); using the Python asyncio client")
    return PythonClient()


def aggregate(runs: list[dict]) -> dict:
    requests = sum(r["requests"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    if all(r["latencies"] is not None for r in runs):  # exact percentiles over every request
        ordered = sorted(x for r in runs for x in r["latencies"])
        p50, p95, p99 = (1000 * common.percentile(ordered, p) for p in (50, 95, 99))
        how = "exact over all requests"
    else:  # wrk reports percentiles per run: request-weighted mean of the rounds

        def weighted(key: str) -> float:
            return sum(r[key] * r["requests"] for r in runs) / max(1, requests)

        p50, p95, p99 = weighted("p50_ms"), weighted("p95_ms"), weighted("p99_ms")
        how = "request-weighted mean of the rounds' percentiles"
    server_cpu = sum(r.get("server_cpu_s", 0.0) for r in runs)
    return {
        "requests": requests,
        "seconds": round(seconds, 2),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_request": round(1e6 * server_cpu / requests, 1) if requests else None,
        "requests_per_s": round(requests / seconds, 1) if seconds else 0.0,
        "errors": sum(r["errors"] for r in runs),
        "latency_ms": {"p50": round(p50, 2), "p95": round(p95, 2), "p99": round(p99, 2)},
        "percentiles": how,
        "rounds": [
            {
                "requests": r["requests"],
                "seconds": round(r["seconds"], 2),
                "requests_per_s": round(r["requests"] / r["seconds"], 1) if r["seconds"] else 0.0,
                "errors": r["errors"],
                "p50_ms": round(r["p50_ms"], 2),
                "p95_ms": round(r["p95_ms"], 2),
            }
            for r in runs
        ],
    }


# ---- in-process profile of the portal's /healthz ---------------------------------------------------
def profile_in_process(requests: int = 2000) -> dict:
    """Time /healthz through Django's WSGI handler with no HTTP at all, then the cost of each
    middleware (all minus all-but-that-one) and the cProfile top functions."""
    import cProfile
    import pstats

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_DIR)  # as the served portal
    common.configure_django()
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    sys.path.insert(0, str(common.BENCH_DIR))
    import _hello_wsgi
    from django.conf import settings

    def environ() -> dict:
        return {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": PATH,
            "QUERY_STRING": "",
            "SERVER_NAME": HOST,
            "SERVER_PORT": "8000",
            "HTTP_HOST": f"{HOST}:8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": HOST,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }

    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call(app) -> None:
        result = app(environ(), start_response)
        b"".join(result)
        if hasattr(result, "close"):
            result.close()

    def time_once(app, n: int) -> float:
        # CPU time of this process: what the code costs, less disturbed by other processes.
        t0 = time.process_time()
        for _ in range(n):
            call(app)
        return (time.process_time() - t0) / n

    def time_apps(apps: list, n: int, samples: int = 15) -> list[float]:
        """Best of `samples` per app, the apps alternating, so that background load on the
        machine hits them alike: in-process figures are about the code, not the box."""
        for app in apps:
            for _ in range(100):
                call(app)
        best = [float("inf")] * len(apps)
        for _ in range(samples):
            for index, app in enumerate(apps):
                best[index] = min(best[index], time_once(app, n))
        return best

    full_stack = list(settings.MIDDLEWARE)
    full_handler = WSGIHandler()
    with override_settings(MIDDLEWARE=[]):
        bare_django = WSGIHandler()
    full, no_middleware, bare = time_apps(
        [full_handler, bare_django, _hello_wsgi.application], requests // 20
    )
    statuses.clear()
    out = {
        "method": f"process CPU time per request, best of 15 alternating runs of "
        f"{requests // 20} (middleware pairs: {requests // 40}) requests; middleware cost = "
        "full stack minus the stack without that one middleware; noisy on a busy machine",
        "full_stack_us": round(1e6 * full, 1),
        "django_no_middleware_us": round(1e6 * no_middleware, 1),
        "bare_wsgi_us": round(1e6 * bare, 2),
    }
    per_middleware: dict[str, float | str] = {}
    for name in full_stack:
        with override_settings(MIDDLEWARE=[m for m in full_stack if m != name]):
            statuses.clear()
            logging.disable(logging.CRITICAL)  # a probe that fails must not log tracebacks
            try:
                handler = WSGIHandler()
                call(handler)
            except Exception as exc:
                statuses.append(f"{type(exc).__name__}")
            finally:
                logging.disable(logging.NOTSET)
            if not statuses[0].startswith("200"):  # another middleware depends on this one
                per_middleware[name] = f"n/a (without it: {statuses[0]})"
                continue
            with_it, without_it = time_apps([full_handler, handler], requests // 40)
            per_middleware[name] = round(1e6 * (with_it - without_it), 1)
    out["middleware_cost_us"] = per_middleware

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        call(full_handler)
    profiler.disable()
    stats = pstats.Stats(profiler)
    top = []
    for (filename, lineno, func), (_cc, nc, tt, ct, _) in sorted(
        stats.stats.items(), key=lambda kv: -kv[1][2]
    )[:15]:
        short = filename.split("site-packages/")[-1].replace(str(common.REPO) + "/", "")
        top.append(
            {
                "function": f"{short}:{lineno}({func})",
                "calls_per_request": round(nc / requests, 2),
                "tottime_us_per_request": round(1e6 * tt / requests, 1),
                "cumtime_us_per_request": round(1e6 * ct / requests, 1),
            }
        )
    out["cprofile_top_tottime"] = top
    return out


# ---- main ----------------------------------------------------------------------------------------
def main() -> int:
    common.log(
        f"{NAME}: {PATH} vs bare WSGI, gunicorn {WORKERS} sync workers, "
        f"{CONCURRENCY} connections, {DURATION:g} s per target in {ROUNDS} rounds"
    )
    started_all = time.perf_counter()
    machine = common.machine()
    if not (common.VENV_BIN / "gunicorn").exists():
        sys.exit("setup failed: .venv/bin/gunicorn not found (make install)")
    common.setup_database()
    env = common.production_env(common.APP_URL)
    # Request metrics in prometheus-client's multiprocess mode, as scripts/run.sh runs the portal.
    shutil.rmtree(PROMETHEUS_DIR, ignore_errors=True)
    PROMETHEUS_DIR.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_DIR)
    common.run(
        "manage.py collectstatic",
        [common.PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        env=env,
    )
    client = choose_client()
    common.log(f"load generator: {client.name} ({client.version})")

    bare = Server("bare", "_hello_wsgi:application", ["--pythonpath", str(common.BENCH_DIR)], env)
    portal = Server("portal", "opsportal.wsgi:application", [], env)
    servers = [bare, portal]

    def on_signal(signum, frame):  # make Ctrl-C / kill run the finally below
        raise SystemExit(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(lambda: [s.stop() for s in servers])
    runs: dict[str, list[dict]] = {"bare": [], "portal": []}
    checks = {}
    try:
        for server in servers:
            server.start()
        for server in servers:
            checks[server.label] = server.wait_ready()
            common.log(f"{server.label} ready on {HOST}:{server.port}")
        for server in servers:
            client.run(server.url, WARMUP)
        per_round = DURATION / ROUNDS
        for round_no in range(ROUNDS):
            order = servers if round_no % 2 == 0 else list(reversed(servers))
            for server in order:
                cpu_before = server.cpu_seconds()
                result = client.run(server.url, per_round)
                result["server_cpu_s"] = server.cpu_seconds() - cpu_before
                runs[server.label].append(result)
                common.log(
                    f"  round {round_no + 1} {server.label:6s} "
                    f"{result['requests'] / result['seconds']:8.1f} req/s  "
                    f"p50 {result['p50_ms']:.2f} ms  p95 {result['p95_ms']:.2f} ms  "
                    f"errors {result['errors']}"
                )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(f"setup failed: {exc}".splitlines()[0])
    finally:
        for server in servers:
            server.stop()
        common.log("gunicorn servers stopped")

    bare_s, portal_s = aggregate(runs["bare"]), aggregate(runs["portal"])
    ratio = portal_s["requests_per_s"] / bare_s["requests_per_s"]
    # The same comparison from server CPU per request: less disturbed by other load on the box.
    cpu_ratio = bare_s["server_cpu_us_per_request"] / portal_s["server_cpu_us_per_request"]
    machine["loadavg_at_end"] = os.getloadavg()

    common.log("profiling /healthz in-process (no HTTP)")
    try:
        in_process = profile_in_process()
    except Exception as exc:  # diagnostics only; the measurement above stands
        in_process = {"error": repr(exc)}

    result = {
        "description": f"GET {PATH} on the portal vs a bare WSGI app, both under gunicorn "
        f"({WORKERS} sync workers), {CONCURRENCY} concurrent connections, same run",
        "machine": machine,
        "client": {
            "note": client.note,
            "name": client.name,
            "version": client.version,
            "concurrency": CONCURRENCY,
            "keep_alive": "no (gunicorn sync workers close every connection)",
        },
        "gunicorn": {
            "workers": WORKERS,
            "worker_class": "sync",
            "config_file": str(GUNICORN_CONF.relative_to(common.REPO))
            if GUNICORN_CONF.exists()
            else None,
            "access_log": "stdout, to var/bench/gunicorn-<name>-access.log",
            "prometheus_multiproc_dir": True,
        },
        "duration_s_per_target": DURATION,
        "rounds": ROUNDS,
        "sanity_check": checks,
        "bare": bare_s,
        "portal": portal_s,
        "ratio_portal_to_bare": round(ratio, 3),
        "cpu_ratio_bare_to_portal_per_request": round(cpu_ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "http_floor_requests_per_s": portal_s["requests_per_s"],
        "in_process_profile": in_process,
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)

    print()
    print(
        f"http_floor ({PATH}, gunicorn {WORKERS} sync workers, {CONCURRENCY} connections, "
        f"{client.name}, {machine['cpus']} CPUs)"
    )
    for label, s in (("bare WSGI", bare_s), ("portal /healthz", portal_s)):
        lat = s["latency_ms"]
        print(
            f"  {label:16s} {s['requests_per_s']:9.1f} req/s   p50 {lat['p50']:.2f} ms   "
            f"p95 {lat['p95']:.2f} ms   server CPU {s['server_cpu_us_per_request']} us/req   "
            f"({s['requests']} requests, {s['errors']} errors)"
        )
    print(
        f"  ratio portal/bare: {100 * ratio:.1f} % (target >= {100 * TARGET_RATIO:.0f} %: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})"
    )
    print(
        f"  server CPU per request, bare/portal: {100 * cpu_ratio:.1f} % "
        "(the same comparison, less disturbed by other load on the machine)"
    )
    if client.note:
        print(f"  NOTE: {client.note}")
    if "error" not in in_process:
        print(
            f"  in-process, per request: bare WSGI {in_process['bare_wsgi_us']} us, Django "
            f"without middleware {in_process['django_no_middleware_us']} us, full stack "
            f"{in_process['full_stack_us']} us"
        )
        print("  middleware cost (full stack minus stack without it), us per request:")
        for name, cost in sorted(
            in_process["middleware_cost_us"].items(),
            key=lambda kv: -(kv[1] if isinstance(kv[1], float) else 0),
        ):
            print(f"    {cost!s:>10}  {name}")
    else:
        print(f"  in-process profile failed: {in_process['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
