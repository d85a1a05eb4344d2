"""20 pull requests posting 1,000-result compliance runs at the same moment, against gunicorn.

The portal runs under gunicorn with the project's gunicorn.conf.py (production mode, DEBUG off,
the least-privilege role opsportal_app so RLS is in force, Redis as cache and broker when
reachable, THROTTLE_RATE raised so the burst is not throttled). Two server configurations, each
measured the same way in the same run:
- "threaded" (the figure for the target): `--worker-class gthread --workers BENCH_WORKERS
  --threads BENCH_THREADS` (default 4 x 5 = 20 request slots, so all 20 are in flight at once);
- "production default": what gunicorn.conf.py and the Dockerfile give, 2 sync workers
  (WEB_CONCURRENCY=2): requests beyond two queue in the listen backlog.

One tenant and one CI token (one CI system posting for 20 pull requests of the tenant). Every
run is a fresh pull request and commit with 1,000 results (~20 % violations over the 25 rules and
~200 files, bench/_compliance_data.py). 20 client threads, bodies prebuilt, wait at a barrier and
are released together; each opens its connection and POSTs (`/api/v1/compliance/runs`,
application/json); latency is from the common release to the last byte of the response.
BURSTS bursts (default 3); the headline is the median burst (by its slowest request), and the
target (every request answered within 5 s) is judged on it; every burst is reported.

Baseline, same run, same server: one such run posted alone (no other request in flight), SINGLES
times (default 5; before and after the bursts), median. The ratio is burst max / single median
(and burst p50 / single median).

While a burst runs, a monitor samples pg_stat_activity every 10 ms (as the owner, a member of the
app role) and counts the app's backends waiting on a lock, by statement: contention between the
concurrent transactions of one tenant shows up there.

Results: bench/results/compliance_concurrent.json. Exits non-zero only if setup fails or a
request gets no answer at all (HTTP errors are counted and reported).
Env: BENCH_WORKERS (4), BENCH_THREADS (5), BENCH_BURSTS (3), BENCH_SINGLES (5),
BENCH_CLIENTS (20), BENCH_RESULTS (1000), BENCH_PRODUCTION_CONFIG (1: also measure 2 sync workers).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _compliance_data as data

NAME = "compliance_concurrent"
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
THREADS = int(os.environ.get("BENCH_THREADS", "5"))
BURSTS = int(os.environ.get("BENCH_BURSTS", "3"))
SINGLES = int(os.environ.get("BENCH_SINGLES", "5"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "20"))
RESULTS = int(os.environ.get("BENCH_RESULTS", "1000"))
PRODUCTION_CONFIG = os.environ.get("BENCH_PRODUCTION_CONFIG", "1") == "1"
TARGET_MAX_S = 5.0
PATH = "/api/v1/compliance/runs"


class Poster:
    def __init__(self, server: data.GunicornServer, token: str):
        self.server = server
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def post(self, body: bytes) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(data.HOST, self.server.port, timeout=60)
        try:
            conn.request("POST", PATH, body=body, headers=self.headers)
            response = conn.getresponse()
            content = response.read()
        finally:
            conn.close()
        try:
            payload = json.loads(content)
        except ValueError:
            payload = {"raw": content[:300].decode(errors="replace")}
        return response.status, payload


class LockMonitor:
    """Samples the app role's backends in pg_stat_activity while running."""

    def __init__(self):
        self.samples = 0
        self.active = 0
        self.lock_waits: Counter[str] = Counter()
        self.waits: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=5)
        return {
            "samples": self.samples,
            "active_backend_samples": self.active,
            "lock_wait_samples": sum(self.lock_waits.values()),
            "lock_waits_by_statement": dict(self.lock_waits.most_common(8)),
            "wait_events": dict(self.waits.most_common(8)),
        }

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(common.OWNER_URL, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    """
                    SELECT wait_event_type, wait_event, left(query, 70)
                    FROM pg_stat_activity
                    WHERE usename = 'opsportal_app' AND datname = %s AND state = 'active'
                    """,
                    [common.BENCH_DB],
                ).fetchall()
                self.samples += 1
                for wait_type, wait_event, query in rows:
                    self.active += 1
                    if wait_type:
                        self.waits[f"{wait_type}:{wait_event}"] += 1
                    if wait_type == "Lock":
                        self.lock_waits[" ".join(query.split())] += 1
                time.sleep(0.01)


def burst(poster: Poster, bodies: list[bytes]) -> dict:
    n = len(bodies)
    release: list[float] = []
    outcomes: list[tuple[float, int, dict] | None] = [None] * n

    def on_release():
        release.append(time.perf_counter())

    barrier = threading.Barrier(n, action=on_release)

    def client(i: int) -> None:
        barrier.wait()
        try:
            status, payload = poster.post(bodies[i])
        except OSError as exc:
            status, payload = 0, {"error": repr(exc)}
        outcomes[i] = (time.perf_counter(), status, payload)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    cpu0, pg0 = poster.server.cpu_seconds(), data.postgres_cpu_seconds()
    monitor = LockMonitor()
    monitor.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    locks = monitor.stop()
    cpu = poster.server.cpu_seconds() - cpu0
    pg = data.postgres_cpu_seconds() - pg0
    if any(o is None for o in outcomes):
        raise RuntimeError("a client thread got no answer within 120 s")
    latencies = sorted(o[0] - release[0] for o in outcomes)
    statuses = Counter(o[1] for o in outcomes)
    errors = [o[2] for o in outcomes if o[1] not in (200, 201)]
    return {
        "max_s": round(latencies[-1], 3),
        "p50_s": round(statistics.median(latencies), 3),
        "min_s": round(latencies[0], 3),
        "latencies_s": [round(x, 3) for x in latencies],
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": [json.dumps(e)[:300] for e in errors[:3]],
        "server_cpu_s": round(cpu, 2),
        "postgres_cpu_s": round(pg, 2),
        "lock_monitor": locks,
    }


def measure_config(label: str, server: data.GunicornServer, token: str, prs: iter) -> dict:
    poster = Poster(server, token)
    common.log(f"[{label}] {server.description}: starting")
    server.start()

    def body(seed: int) -> bytes:
        number = next(prs)
        return data.run_body(
            repository="acme/concurrent",
            pull_request=number,
            commit_sha=data.sha("concurrent", number),
            results=data.results(RESULTS, seed=seed),
        )

    # Warm-up: every worker process imports and connects on its first requests.
    warm = [body(10_000 + i) for i in range(2 * server.workers * max(1, server.threads))]
    for chunk in range(0, len(warm), CLIENTS):
        burst(poster, warm[chunk : chunk + CLIENTS])

    def singles(count: int, seed0: int) -> list[float]:
        out = []
        for i in range(count):
            b = body(seed0 + i)
            t0 = time.perf_counter()
            status, payload = poster.post(b)
            elapsed = time.perf_counter() - t0
            if status not in (200, 201):
                raise RuntimeError(f"single run: HTTP {status}: {json.dumps(payload)[:500]}")
            out.append(elapsed)
        return out

    single = singles((SINGLES + 1) // 2, 20_000)
    bursts = []
    for b in range(BURSTS):
        bodies = [body(30_000 + 100 * b + i) for i in range(CLIENTS)]
        result = burst(poster, bodies)
        bursts.append(result)
        common.log(
            f"[{label}]   burst {b + 1}: max {result['max_s']:.2f} s, p50 {result['p50_s']:.2f} s"
            f", statuses {result['statuses']}, lock-wait samples "
            f"{result['lock_monitor']['lock_wait_samples']}, server CPU {result['server_cpu_s']} s"
        )
        time.sleep(0.5)
    single += singles(SINGLES // 2, 40_000)
    server.stop()
    single_median = statistics.median(single)
    common.log(
        f"[{label}]   one run alone: median {1000 * single_median:.0f} ms "
        f"({', '.join(f'{1000 * s:.0f}' for s in single)} ms)"
    )
    headline = sorted(bursts, key=lambda r: r["max_s"])[len(bursts) // 2]
    all_ok = all(
        sum(v for k, v in r["statuses"].items() if k in ("200", "201")) == CLIENTS for r in bursts
    )
    return {
        "server": server.description,
        "command": " ".join(server.cmd[1:]),
        "single_alone_s": {
            "median": round(single_median, 4),
            "all": [round(s, 4) for s in single],
        },
        "bursts": bursts,
        "headline_burst": bursts.index(headline) + 1,
        "burst_max_s": headline["max_s"],
        "burst_p50_s": headline["p50_s"],
        "ratio_burst_max_to_single": round(headline["max_s"] / single_median, 2),
        "ratio_burst_p50_to_single": round(headline["p50_s"] / single_median, 2),
        "all_requests_succeeded": all_ok,
        "target_met": headline["max_s"] <= TARGET_MAX_S and all_ok,
        "every_burst_within_target": all(r["max_s"] <= TARGET_MAX_S for r in bursts),
    }


def main() -> int:
    started_all = time.perf_counter()
    common.log(
        f"{NAME}: {CLIENTS} pull requests x {RESULTS} results at once, {BURSTS} bursts, "
        f"baseline: one run alone"
    )
    machine = common.machine()
    redis_env, redis_client = data.prepare_portal(needs_gunicorn=True)
    _tenant, token = data.create_tenant_with_token("bench-concurrent")
    env = common.production_env(common.APP_URL)
    env.update(redis_env)
    env["THROTTLE_RATE"] = os.environ["THROTTLE_RATE"]

    configs = [("threaded", WORKERS, THREADS)]
    if PRODUCTION_CONFIG:
        configs.append(("production default", 2, 1))
    numbers = iter(range(1, 1_000_000))
    out = {}
    servers: list[data.GunicornServer] = []
    try:
        for label, workers, threads in configs:
            server = data.GunicornServer(
                f"compliance-{label.split()[0]}", env, workers=workers, threads=threads
            )
            servers.append(server)
            out[label] = measure_config(label, server, token, numbers)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(f"failed: {exc}".splitlines()[0])
    finally:
        for server in servers:
            server.stop()
        data.flush_redis(redis_client)
        common.log("gunicorn stopped")

    main_config = out["threaded"]
    result = {
        "description": f"{CLIENTS} concurrent POST {PATH} of {RESULTS}-result runs (fresh pull "
        "requests of one tenant, one CI token) against gunicorn, vs one such run posted alone on "
        "the same server; same run",
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "cache_and_broker": redis_env.get("REDIS_URL", "file cache / file broker"),
        "throttle_rate": os.environ["THROTTLE_RATE"],
        "clients": CLIENTS,
        "results_per_run": RESULTS,
        "client": "20 Python threads (http.client), released by a barrier, one connection each",
        "configs": out,
        "target_max_s": TARGET_MAX_S,
        "target_met": main_config["target_met"],
        "wall_s": round(time.perf_counter() - started_all, 1),
    }
    common.write_result(NAME, result)
    print_report(result)
    return 0


def print_report(r: dict) -> None:
    print()
    print(
        f"{NAME} ({r['clients']} pull requests x {r['results_per_run']} results posted at once, "
        f"{r['machine']['cpus']} CPUs)"
    )
    for label, c in r["configs"].items():
        print(f"  {label}: {c['server']}")
        print(
            f"    one run alone: median {1000 * c['single_alone_s']['median']:.0f} ms;  burst "
            f"(median of {len(c['bursts'])}): max {c['burst_max_s']:.2f} s, p50 "
            f"{c['burst_p50_s']:.2f} s -> ratio max/alone {c['ratio_burst_max_to_single']:.1f}x,"
            f" p50/alone {c['ratio_burst_p50_to_single']:.1f}x"
        )
        print(
            "    bursts (max / p50 s): "
            + ", ".join(f"{b['max_s']:.2f} / {b['p50_s']:.2f}" for b in c["bursts"])
            + f"; all answered 2xx: {c['all_requests_succeeded']}"
        )
        lock = c["bursts"][c["headline_burst"] - 1]["lock_monitor"]
        print(
            f"    lock waits (headline burst): {lock['lock_wait_samples']} samples of "
            f"{lock['active_backend_samples']} active-backend samples"
        )
        for statement, n in list(lock["lock_waits_by_statement"].items())[:4]:
            print(f"      {n:5d}  {statement}")
        print(
            f"    all within {r['target_max_s']:g} s: "
            f"{'target met' if c['target_met'] else 'target NOT met'}"
            + ("" if label == "threaded" else " (information)")
        )
    print(f"  bench wall time {r['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
