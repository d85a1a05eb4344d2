"""Shared pieces of the compliance benchmarks (a helper, not a benchmark itself).

- `run_body()`: a realistic native run body (about 20 % violations over the 25 catalog rules and
  about 200 files, messages of about 60 characters), deterministic for a seed;
- `create_tenant_with_token()`: a tenant and a CI (or other role) API token, through the app's
  services, as the least-privilege role (needs `_common.configure_django()` first);
- `generate_history()`: the historical data of one tenant written fast with SQL as the table
  owner (pull requests, runs, check results, violations open and resolved, overrides, rule
  check states, daily trends), then ANALYZE;
- `redis_setup()`: a Redis database of the benchmarks' own for the cache (throttle) and the
  Celery broker, as production runs (falls back to the defaults when Redis is not reachable);
- `GunicornServer`, `WrkClient`, `PythonKeepAliveClient`: a portal under gunicorn and the HTTP
  load generators (wrk when installed; a keep-alive asyncio client otherwise).

The benchmarks run the portal with THROTTLE_RATE=1000000/s rather than .../min: DRF's
SimpleRateThrottle keeps one timestamp per request of its window in the cache entry of the
principal (one CI token here), unpickled and pickled again on every request. With a one-minute
window at benchmark rates that list grows to tens of thousands of entries, a cost production
(100/min by default) never pays; a one-second window keeps it short while the throttle still runs
on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

RULES = [f"R{i:02d}" for i in range(1, 26)]
FILES = 200
HOST = "127.0.0.1"
REDIS_DB = int(os.environ.get("BENCH_COMPLIANCE_REDIS_DB", "13"))
GUNICORN_CONF = common.REPO / "gunicorn.conf.py"
PROMETHEUS_DIR = common.BENCH_VAR_DIR / "prometheus-compliance"

_VERBS = ("exceeds the configured limit", "is missing a required check", "uses a banned call")


def file_path(index: int) -> str:
    return f"src/pkg_{index % 17:02d}/module_{index:03d}.py"


def violation_message(rule_id: str, n: int) -> str:
    # About 60 characters; no line or column references, so the fingerprint keeps the digits.
    return f"{rule_id}: function handler_{n:03d} {_VERBS[n % len(_VERBS)]} here"


def pass_message(rule_id: str, n: int) -> str:
    return f"{rule_id}: function handler_{n:03d} satisfies the policy checks"


def results(count: int, *, seed: int, violation_share: float = 0.2) -> list[dict]:
    """`count` native results: ~violation_share violations spread over the 25 rules and ~200
    files, messages ~60 characters, line numbers 1-2000."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        rule_id = rng.choice(RULES)
        n = rng.randrange(1000)
        violated = rng.random() < violation_share
        out.append(
            {
                "rule_id": rule_id,
                "status": "VIOLATION" if violated else "PASS",
                "file_path": file_path(rng.randrange(FILES)),
                "line": rng.randrange(1, 2001),
                "message": violation_message(rule_id, n) if violated else pass_message(rule_id, n),
            }
        )
    return out


def next_commit(previous: list[dict], *, seed: int, churn: float = 0.1) -> list[dict]:
    """The results of a later commit of the same pull request: every line moved (fingerprints
    ignore lines), and `churn` of the results flipped (violations fixed, new ones opened)."""
    rng = random.Random(seed)
    out = []
    for result in previous:
        result = {**result, "line": rng.randrange(1, 2001)}
        if rng.random() < churn:
            n = rng.randrange(1000)
            rule_id = result["rule_id"]
            if result["status"] == "VIOLATION":
                result.update(status="PASS", message=pass_message(rule_id, n))
            else:
                result.update(status="VIOLATION", message=violation_message(rule_id, n))
        out.append(result)
    return out


def run_body(
    *,
    repository: str,
    pull_request: int,
    commit_sha: str,
    results: list[dict],
    tool: str = "policy",
) -> bytes:
    return json.dumps(
        {
            "repository": repository,
            "pull_request": pull_request,
            "commit_sha": commit_sha,
            "tool": tool,
            "results": results,
        },
        separators=(",", ":"),
    ).encode()


def wsgi_environ(method: str, path: str, *, body: bytes = b"", headers=None, query="") -> dict:
    """A WSGI environ as gunicorn would pass it (for timing Django's handler in-process)."""
    import io

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": HOST,
        "SERVER_PORT": "8000",
        "HTTP_HOST": f"{HOST}:8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": HOST,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        else:
            environ[f"HTTP_{key}"] = value
    return environ


class InProcessPortal:
    """POSTs to one path through Django's WSGI handler in this process (no HTTP), timed."""

    def __init__(self, token: str, path: str):
        from django.core.handlers.wsgi import WSGIHandler

        self.handler = WSGIHandler()
        self.token = token
        self.path = path
        self.statuses: list[str] = []

    def post(self, body: bytes) -> tuple[float, float, int, dict]:
        """(wall seconds, process CPU seconds, status, response JSON) of one request."""
        import time

        environ = wsgi_environ(
            "POST",
            self.path,
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        self.statuses.clear()

        def start_response(status, headers, exc_info=None):
            self.statuses.append(status)

        cpu0 = time.process_time()
        t0 = time.perf_counter()
        result = self.handler(environ, start_response)
        content = b"".join(result)
        if hasattr(result, "close"):
            result.close()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        status = int(self.statuses[0].split()[0])
        try:
            payload = json.loads(content)
        except ValueError:
            payload = {"raw": content[:500].decode(errors="replace")}
        return wall, cpu, status, payload


def sha(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()  # noqa: S324


def create_tenant_with_token(slug: str, role: str = "ci"):
    """(tenant, plaintext token). Django must be configured (as the app role)."""
    from apps.tenancy.rls import all_tenants_context
    from apps.tenancy.services import create_api_token, create_tenant

    with all_tenants_context():
        tenant = create_tenant(slug=slug, name=slug.replace("-", " ").title())
        _token, plaintext = create_api_token(tenant=tenant, name=f"{slug}-{role}", role=role)
    return tenant, plaintext


# ---- Redis for cache and broker -----------------------------------------------------------------
def redis_setup() -> tuple[dict[str, str], object | None]:
    """Env for a portal process using the benchmarks' own Redis database (flushed now), and a
    client to flush it again at the end; ({}, None) when Redis is not reachable."""
    base = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379")
    url = urlunsplit((base.scheme, base.netloc, f"/{REDIS_DB}", "", ""))
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5)
        client.ping()
        client.flushdb()
    except Exception as exc:
        common.log(f"Redis not reachable ({exc!r}): file cache and file broker instead")
        return {}, None
    return {
        "REDIS_URL": url,
        "CELERY_BROKER_URL": url,
        "CELERY_QUEUE": "bench-compliance",  # nothing consumes it; flushed at the end
    }, client


def prepare_portal(*, needs_gunicorn: bool = False) -> tuple[dict[str, str], object | None]:
    """The setup every compliance bench shares: a fresh bench database, its own Redis database
    for cache and broker, throttling lifted (see redis_setup), and Django configured as the app
    role. Returns the Redis environment (for servers started later) and a client to flush."""
    if needs_gunicorn and not (common.VENV_BIN / "gunicorn").exists():
        sys.exit("setup failed: .venv/bin/gunicorn not found (make install)")
    common.setup_database()
    redis_env, redis_client = redis_setup()
    os.environ.update(redis_env)
    os.environ["THROTTLE_RATE"] = "1000000/s"
    common.configure_django()
    return redis_env, redis_client


def flush_redis(client) -> None:
    if client is not None:
        with contextlib.suppress(Exception):
            client.flushdb()


def collectstatic(env: dict[str, str]) -> None:
    common.run(
        "manage.py collectstatic",
        [common.PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        env=env,
    )


# ---- historical data, written as the owner --------------------------------------------------------
def owner_connection():
    import psycopg

    return psycopg.connect(common.OWNER_URL, autocommit=False)


def generate_history(
    tenant_id: int,
    *,
    results_total: int = 1_000_000,
    runs: int = 2000,
    pull_requests: int = 500,
    repositories: int = 20,
    days: int = 90,
    trend_days: int = 365,
    approved_overrides: int = 40,
    time_zone: str = "America/Edmonton",
) -> dict:
    """History of one tenant written with set-based SQL as the table owner (no RLS), then
    ANALYZE. Runs are spread evenly over the last `days` days and over the pull requests (each
    gets runs // pull_requests commits); each run has results_total // runs results. A result's
    rule, file and message depend on the pull request and its position only, so a pull request's
    commits report mostly the same findings (about 20 % violations; some come and go between
    commits). Violations are derived from the results exactly as ingestion would: one per pull
    request and fingerprint (the app's own fingerprint), open if its pull request's latest run
    still reports it, else resolved. Returns counts and timings."""
    import zoneinfo

    per_run = results_total // runs
    timings: dict[str, float] = {}
    now = datetime.now(UTC)
    today = now.astimezone(zoneinfo.ZoneInfo(time_zone)).date()

    def step(label: str, cur, sql: str, params=None) -> None:
        t0 = time.perf_counter()
        cur.execute(sql, params)
        timings[label] = round(time.perf_counter() - t0, 2)
        common.log(f"  {label}: {timings[label]} s")

    with owner_connection() as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute("SET LOCAL synchronous_commit = off")
        # The foreign keys are DEFERRABLE INITIALLY DEFERRED: checked row by row at COMMIT,
        # about 30 s for a million results here. Dropped for the load and added back (same
        # names and definitions) after it, which validates each with one join.
        foreign_keys = []
        for table in ("compliance_checkresult", "compliance_violation"):
            cur.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s::regclass AND contype = 'f'",
                [table],
            )
            for name, definition in cur.fetchall():
                foreign_keys.append((table, name, definition))
                cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        step(
            "pull requests",
            cur,
            """
            INSERT INTO compliance_pullrequest
                (tenant_id, repository, number, head_sha, score, decision,
                 last_run_at, created_at, version)
            SELECT %(t)s, 'acme/repo-' || lpad((p %% %(repos)s)::text, 2, '0'), 1000 + p,
                   '', 100, 'PASS', NULL, %(now)s - make_interval(days => %(days)s),
                   1
            FROM generate_series(1, %(prs)s) AS p
            """,
            {"t": tenant_id, "repos": repositories, "prs": pull_requests, "now": now, "days": days},
        )
        # Runs: run k belongs to pull request k % prs (its (k / prs)-th commit), received at
        # evenly spread times, oldest first.
        step(
            "check runs",
            cur,
            """
            WITH prs AS (
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS idx
                FROM compliance_pullrequest WHERE tenant_id = %(t)s
            )
            INSERT INTO compliance_checkrun
                (tenant_id, pull_request_id, commit_sha, tool, source_format, received_at,
                 result_count, passed_count, violation_count, suppressed_count,
                 new_violation_count, resolved_violation_count, score, decision, response)
            SELECT %(t)s, prs.id, encode(sha256(convert_to('commit-' || k, 'UTF8')), 'hex'),
                   'policy', 'native',
                   %(now)s - make_interval(secs => (%(runs)s - k) * %(span)s / %(runs)s),
                   %(per_run)s, 0, 0, 0, 0, 0, 100, 'PASS', '{}'::jsonb
            FROM generate_series(0, %(runs)s - 1) AS k
            JOIN prs ON prs.idx = k %% %(prs)s
            """,
            {
                "t": tenant_id,
                "now": now,
                "runs": runs,
                "span": days * 86400.0,
                "per_run": per_run,
                "prs": pull_requests,
            },
        )
        cur.execute("SELECT count(*) FROM compliance_checkrun WHERE tenant_id = %s", [tenant_id])
        assert cur.fetchone()[0] == runs
        # Results: position g of a run of pull request p is finding b = g + 7919 p: its rule,
        # file and message depend on b; whether it is a violation on b mostly, a little on the
        # commit (c = 0, 1, ... of that pull request), so later commits resolve a few
        # violations and open a few.
        step(
            "check results",
            cur,
            """
            WITH r AS (
                SELECT cr.id AS run_id, cr.pull_request_id AS pr, cr.received_at,
                       row_number() OVER (ORDER BY cr.id) AS k
                FROM compliance_checkrun cr WHERE cr.tenant_id = %(t)s
            ), x AS (
                SELECT r.run_id, r.received_at, g, r.k,
                       'R' || lpad(((b %% 25) + 1)::text, 2, '0') AS rule_id,
                       'src/pkg_' || lpad((((b * 31) %% 200) %% 17)::text, 2, '0') || '/module_'
                           || lpad(((b * 31) %% 200)::text, 3, '0') || '.py' AS file_path,
                       (b %% 1000) AS n,
                       ((b %% 5 = 0 AND (g + c * 3) %% 10 <> 0)
                        OR (g * 11 + c) %% 97 = 0) AS violated
                FROM r CROSS JOIN generate_series(1, %(per_run)s) AS g
                CROSS JOIN LATERAL (SELECT g + 7919 * r.pr AS b, (r.k - 1) / %(prs)s AS c) AS bb
            ), m AS (
                SELECT x.*, CASE WHEN violated THEN
                        rule_id || ': function handler_' || lpad(n::text, 3, '0') || ' ' ||
                        (ARRAY['exceeds the configured limit', 'is missing a required check',
                               'uses a banned call'])[(n %% 3) + 1] || ' here'
                    ELSE rule_id || ': function handler_' || lpad(n::text, 3, '0')
                        || ' satisfies the policy checks' END AS message
                FROM x
            )
            INSERT INTO compliance_checkresult
                (tenant_id, run_id, rule_id, status, severity, suppressed, file_path, line,
                 message, fingerprint, tool_rule, context, created_at)
            SELECT %(t)s, m.run_id, m.rule_id,
                   CASE WHEN violated THEN 'VIOLATION' ELSE 'PASS' END, rule.tier, false,
                   m.file_path, 1 + (g * 37 + k) %% 2000, m.message,
                   CASE WHEN violated THEN left(encode(sha256(convert_to(
                       m.rule_id || chr(31) || m.file_path || chr(31) || lower(m.message),
                       'UTF8')), 'hex'), 40) ELSE '' END,
                   '', '{}'::jsonb, m.received_at
            FROM m JOIN compliance_rule rule ON rule.id = m.rule_id
            """,
            {"t": tenant_id, "per_run": per_run, "prs": pull_requests},
        )
        step(
            "run counts",
            cur,
            """
            UPDATE compliance_checkrun cr SET passed_count = c.passed,
                   violation_count = c.violated
            FROM (SELECT run_id, count(*) FILTER (WHERE status = 'PASS') AS passed,
                         count(*) FILTER (WHERE status = 'VIOLATION') AS violated
                  FROM compliance_checkresult WHERE tenant_id = %(t)s GROUP BY run_id) c
            WHERE cr.id = c.run_id
            """,
            {"t": tenant_id},
        )
        # Violations: one per (pull request, fingerprint), as ingestion dedups them; open if the
        # pull request's latest run reports it, else resolved by that run's commit.
        step(
            "violations",
            cur,
            """
            WITH latest AS (
                SELECT DISTINCT ON (pull_request_id) pull_request_id, id, commit_sha,
                       received_at
                FROM compliance_checkrun WHERE tenant_id = %(t)s
                ORDER BY pull_request_id, received_at DESC
            ), seen AS (
                SELECT cr.pull_request_id AS pr, res.fingerprint,
                       min(cr.received_at) AS first_at, max(cr.received_at) AS last_at,
                       (array_agg(cr.id ORDER BY cr.received_at))[1] AS first_run,
                       (array_agg(cr.id ORDER BY cr.received_at DESC))[1] AS last_run,
                       (array_agg(res.id ORDER BY cr.received_at DESC))[1] AS result_id,
                       count(*) AS occurrences
                FROM compliance_checkresult res JOIN compliance_checkrun cr ON cr.id = res.run_id
                WHERE res.tenant_id = %(t)s AND res.status = 'VIOLATION'
                GROUP BY cr.pull_request_id, res.fingerprint
            )
            INSERT INTO compliance_violation
                (tenant_id, pull_request_id, rule_id, tool, fingerprint, severity, status,
                 file_path, line, message, occurrences, first_seen_run_id, last_seen_run_id,
                 first_seen_at, last_seen_at, resolved_at, resolved_by_commit)
            SELECT %(t)s, seen.pr, res.rule_id, 'policy', seen.fingerprint, res.severity,
                   CASE WHEN seen.last_run = latest.id THEN 'open' ELSE 'resolved' END,
                   res.file_path, res.line, res.message, seen.occurrences, seen.first_run,
                   seen.last_run, seen.first_at, seen.last_at,
                   CASE WHEN seen.last_run = latest.id THEN NULL ELSE latest.received_at END,
                   CASE WHEN seen.last_run = latest.id THEN '' ELSE latest.commit_sha END
            FROM seen JOIN latest ON latest.pull_request_id = seen.pr
            JOIN compliance_checkresult res ON res.id = seen.result_id
            """,
            {"t": tenant_id},
        )
        # A handful of overrides: approved and unexpired on open violations (40 by default),
        # and as many pending, rejected and expired ones.
        step(
            "overrides",
            cur,
            """
            WITH picked AS (
                SELECT v.id, v.pull_request_id, v.rule_id, v.fingerprint,
                       row_number() OVER (ORDER BY md5(v.id::text)) AS i
                FROM compliance_violation v
                WHERE v.tenant_id = %(t)s AND v.status = 'open'
                  AND v.rule_id IN ('R09', 'R10', 'R11', 'R12', 'R13', 'R14', 'R15')
            ), s AS (
                SELECT picked.*, (ARRAY['APPROVED', 'PENDING', 'REJECTED', 'EXPIRED'])
                    [1 + (i - 1) / %(n)s] AS state
                FROM picked WHERE i <= 4 * %(n)s
            )
            INSERT INTO overrides_override
                (tenant_id, pull_request_id, violation_id, rule_id, fingerprint, state, reason,
                 requested_days, requested_by_label, requested_at, decided_by_label, decided_at,
                 decision_reason, expires_at, ended_at, version)
            SELECT %(t)s, pull_request_id, id, rule_id, fingerprint, state,
                   'Legacy module, fix scheduled for the next sprint (benchmark data).', 14,
                   'token:bench-ci', %(now)s - interval '3 days',
                   CASE WHEN state = 'PENDING' THEN '' ELSE 'bench-admin' END,
                   CASE WHEN state = 'PENDING' THEN NULL ELSE %(now)s - interval '2 days' END,
                   '',
                   CASE state WHEN 'APPROVED' THEN %(now)s + interval '12 days'
                              WHEN 'EXPIRED' THEN %(now)s - interval '1 day' END,
                   CASE WHEN state = 'EXPIRED' THEN %(now)s - interval '1 day' END, 1
            FROM s
            """,
            {"t": tenant_id, "n": approved_overrides, "now": now},
        )
        # Pull requests: head, last run, and score/decision from their open violations (the
        # gate recomputes them on read; the dashboard lists the stored ones).
        step(
            "pull request state",
            cur,
            """
            WITH latest AS (
                SELECT DISTINCT ON (pull_request_id) pull_request_id, commit_sha, received_at
                FROM compliance_checkrun WHERE tenant_id = %(t)s
                ORDER BY pull_request_id, received_at DESC
            ), counts AS (
                SELECT pull_request_id,
                       count(*) FILTER (WHERE severity = 'BLOCK') AS b,
                       count(*) FILTER (WHERE severity = 'OVERRIDE') AS o,
                       count(*) FILTER (WHERE severity = 'WARNING') AS w
                FROM compliance_violation WHERE tenant_id = %(t)s AND status = 'open'
                GROUP BY pull_request_id
            )
            UPDATE compliance_pullrequest pr SET
                head_sha = latest.commit_sha, last_run_at = latest.received_at,
                score = greatest(0, 100 - 10 * coalesce(b, 0) - 3 * coalesce(o, 0)
                                 - coalesce(w, 0)),
                decision = CASE WHEN coalesce(b, 0) > 0 THEN 'BLOCKED'
                                WHEN 100 - 10 * coalesce(b, 0) - 3 * coalesce(o, 0)
                                     - coalesce(w, 0) < 70 THEN 'FAIL' ELSE 'PASS' END
            FROM latest LEFT JOIN counts ON counts.pull_request_id = latest.pull_request_id
            WHERE pr.id = latest.pull_request_id
            """,
            {"t": tenant_id},
        )
        step(
            "rule check states",
            cur,
            """
            INSERT INTO compliance_rulecheckstate (tenant_id, rule_id, last_checked_at)
            SELECT %(t)s, id, %(now)s FROM compliance_rule
            """,
            {"t": tenant_id, "now": now},
        )
        first_day = today - timedelta(days=trend_days - 1)
        step(
            "rule trends",
            cur,
            """
            INSERT INTO compliance_ruletrend
                (tenant_id, rule_id, day, evaluated, passing, violations, compliance_rate,
                 built_at)
            SELECT %(t)s, rule.id, d::date, e, e - v, v, (e - v)::float / e, %(now)s
            FROM compliance_rule rule
            CROSS JOIN generate_series(%(first)s::date, %(today)s::date, interval '1 day') AS d
            CROSS JOIN LATERAL (
                SELECT 400 + (hashtext(rule.id || d::text) & 511) AS e,
                       40 + (hashtext(d::text || rule.id) & 127) AS v
            ) AS f
            """,
            {"t": tenant_id, "now": now, "first": first_day, "today": today},
        )
        t0 = time.perf_counter()
        for table, name, definition in foreign_keys:
            cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        timings["foreign keys added back"] = round(time.perf_counter() - t0, 2)
        common.log(f"  foreign keys added back: {timings['foreign keys added back']} s")
        t0 = time.perf_counter()
        conn.commit()
        timings["commit"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        conn.autocommit = True
        for table in (
            "compliance_pullrequest",
            "compliance_checkrun",
            "compliance_checkresult",
            "compliance_violation",
            "overrides_override",
            "compliance_rulecheckstate",
            "compliance_ruletrend",
        ):
            cur.execute(f"VACUUM (ANALYZE) {table}")
        timings["vacuum analyze"] = round(time.perf_counter() - t0, 2)
        common.log(f"  vacuum analyze: {timings['vacuum analyze']} s")
        t0 = time.perf_counter()
        counts = {}
        for label, sql in (
            ("pull_requests", "SELECT count(*) FROM compliance_pullrequest WHERE tenant_id = %s"),
            ("check_runs", "SELECT count(*) FROM compliance_checkrun WHERE tenant_id = %s"),
            ("check_results", "SELECT count(*) FROM compliance_checkresult WHERE tenant_id = %s"),
            (
                "check_results_violations",
                "SELECT count(*) FROM compliance_checkresult WHERE tenant_id = %s"
                " AND status = 'VIOLATION'",
            ),
            (
                "violations_open",
                "SELECT count(*) FROM compliance_violation WHERE tenant_id = %s"
                " AND status = 'open'",
            ),
            (
                "violations_resolved",
                "SELECT count(*) FROM compliance_violation WHERE tenant_id = %s"
                " AND status = 'resolved'",
            ),
            (
                "overrides_approved",
                "SELECT count(*) FROM overrides_override WHERE tenant_id = %s"
                " AND state = 'APPROVED'",
            ),
            ("overrides_all", "SELECT count(*) FROM overrides_override WHERE tenant_id = %s"),
            ("rule_trends", "SELECT count(*) FROM compliance_ruletrend WHERE tenant_id = %s"),
        ):
            cur.execute(sql, [tenant_id])
            counts[label] = cur.fetchone()[0]
        timings["counting"] = round(time.perf_counter() - t0, 2)
    return {"counts": counts, "seconds_by_step": timings, "first_trend_day": str(first_day)}


def pull_request_keys(tenant_id: int) -> list[tuple[str, int]]:
    """(repository, number) of every pull request of the tenant, read as the owner."""
    with owner_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT repository, number FROM compliance_pullrequest WHERE tenant_id = %s"
            " ORDER BY id",
            [tenant_id],
        )
        return [(r, n) for r, n in cur.fetchall()]


def explain(sql: str, params: list, *, tenant_id: int) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement as the app role with the tenant's RLS scope."""
    import psycopg

    with psycopg.connect(common.APP_URL, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('opsportal.tenant_id', %s, false),"
            " set_config('opsportal.all_tenants', 'off', false)",
            [str(tenant_id)],
        )
        cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return [row[0] for row in cur.fetchall()]


def today_in(time_zone: str) -> date:
    import zoneinfo

    return datetime.now(UTC).astimezone(zoneinfo.ZoneInfo(time_zone)).date()


# ---- gunicorn --------------------------------------------------------------------------------------
class GunicornServer:
    """The portal under gunicorn with the project's gunicorn.conf.py, the command line pinning
    workers, threads and worker class; its own process group, stopped by stop()."""

    def __init__(self, label: str, env: dict[str, str], *, workers: int, threads: int):
        self.label = label
        self.workers = workers
        self.threads = threads
        self.worker_class = "gthread" if threads > 1 else "sync"
        self.port = common.free_port(HOST)
        self.log_path = common.BENCH_VAR_DIR / f"gunicorn-{label}.log"
        self.access_log_path = common.BENCH_VAR_DIR / f"gunicorn-{label}-access.log"
        config = ["--config", str(GUNICORN_CONF)] if GUNICORN_CONF.exists() else []
        self.cmd = [
            str(common.VENV_BIN / "gunicorn"),
            "opsportal.wsgi:application",
            *config,
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            self.worker_class,
            *(["--threads", str(threads)] if threads > 1 else []),
            "--timeout",
            "120",
            "--chdir",
            str(common.REPO),
            "--log-level",
            "warning",
            "--error-logfile",
            str(self.log_path),
            "--access-logfile",  # as in production (Dockerfile): to stdout, kept in a file
            "-",
        ]
        shutil.rmtree(PROMETHEUS_DIR, ignore_errors=True)
        PROMETHEUS_DIR.mkdir(parents=True)
        self.env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(PROMETHEUS_DIR)}
        self.proc: subprocess.Popen | None = None

    @property
    def description(self) -> str:
        threads = f" x {self.threads} threads" if self.threads > 1 else ""
        return f"gunicorn {self.workers} {self.worker_class} workers{threads}"

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def start(self, timeout: float = 60) -> None:
        with open(self.access_log_path, "wb") as access_log:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=common.REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=access_log,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} gunicorn exited {self.proc.returncode}; "
                    f"see {self.log_path}:\n{common.tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=5) as response:  # noqa: S310 (http://127.0.0.1 only)
                    if response.status == 200:
                        return
            except Exception as exc:
                last_error = repr(exc)
            time.sleep(0.25)
        raise RuntimeError(f"{self.label} not ready after {timeout} s: {last_error}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the arbiter and its workers so far (Linux /proc)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def postgres_cpu_seconds() -> float:
    """CPU seconds of every postgres process so far (backends come and go: a rough figure)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" not in text:
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# ---- HTTP load generators ---------------------------------------------------------------------------
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))
WRK_DONE_LUA = r"""
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
WRK_LUA = (
    r"""
local paths = {}
local headers_extra = {}
init = function(args)
  for line in io.lines(args[1]) do
    if string.sub(line, 1, 2) == "H " then
      local name, value = string.match(string.sub(line, 3), "^([^:]+):%s*(.*)$")
      headers_extra[name] = value
    else
      paths[#paths + 1] = line
    end
  end
  for name, value in pairs(headers_extra) do wrk.headers[name] = value end
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
local non2xx = 0
response = function(status, headers, body)
  if status >= 300 then non2xx = non2xx + 1 end
end
"""
    + WRK_DONE_LUA
)


class WrkClient:
    """wrk (keep-alive, -t2): GETs of paths drawn at random from a list, with fixed headers."""

    name = "wrk"

    def __init__(self, binary: str, script: str = WRK_LUA, threads: int = WRK_THREADS):
        self.binary = binary
        self.threads = threads
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
        self.script = self.tmp / "requests.lua"
        self.script.write_text(script)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True)
        self.version = (version.stdout or version.stderr).splitlines()[0].strip()

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(
        self,
        base_url: str,
        paths: list[str],
        headers: dict[str, str],
        *,
        connections: int,
        seconds: float,
    ) -> dict:
        lines = [f"H {k}: {v}" for k, v in headers.items()] + list(paths)
        return self.run_lines(base_url, lines, connections=connections, seconds=seconds)

    def run_lines(
        self, base_url: str, lines: list[str], *, connections: int, seconds: float
    ) -> dict:
        """Run wrk with the script reading `lines` (header lines `H name: value`, then requests)."""
        spec = self.tmp / "requests.txt"
        spec.write_text("".join(line + "\n" for line in lines))
        cmd = [
            self.binary,
            f"-t{min(self.threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(self.script),
            base_url,
            "--",
            str(spec),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        return common.wrk_result(proc)


class PythonKeepAliveClient:
    """Fallback when wrk is not installed: an asyncio closed loop, one keep-alive HTTP/1.1
    connection per client. One Python process: its own CPU use competes with the server."""

    name = "python-asyncio-keepalive"
    version = f"python {sys.version.split()[0]}"

    def close(self) -> None:
        pass

    def run(self, base_url, paths, headers, *, connections, seconds) -> dict:
        return asyncio.run(self._run(base_url, paths, headers, connections, seconds))

    async def _run(self, base_url, paths, headers, connections, seconds) -> dict:
        port = int(urlsplit(base_url).port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        requests = [
            f"GET {p} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{extra}\r\n".encode() for p in paths
        ]
        latencies: list[float] = []
        errors = 0
        rng = random.Random()
        started = time.perf_counter()
        deadline = started + seconds

        async def read_response(reader) -> int:
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            return status

        async def one_client() -> None:
            nonlocal errors
            reader = writer = None
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(HOST, port)
                    writer.write(requests[rng.randrange(len(requests))])
                    status = await asyncio.wait_for(read_response(reader), timeout=10)
                    if status < 300:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors += 1
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
            if writer is not None:
                writer.close()

        await asyncio.gather(*(one_client() for _ in range(connections)))
        elapsed = time.perf_counter() - started
        ordered = sorted(latencies)
        return {
            "requests": len(latencies),
            "seconds": elapsed,
            "errors": errors,
            "p50_ms": 1000 * common.percentile(ordered, 50),
            "p95_ms": 1000 * common.percentile(ordered, 95),
            "p99_ms": 1000 * common.percentile(ordered, 99),
            "max_ms": 1000 * ordered[-1] if ordered else float("nan"),
            "latencies": latencies,
        }


def choose_client():
    wanted = os.environ.get("BENCH_CLIENT", "wrk")
    binary = shutil.which("wrk")
    if wanted == "wrk" and binary:
        return WrkClient(binary)
    if wanted == "wrk":
        common.log("wrk not installed (apt-get install -y wrk): the Python keep-alive client")
    return PythonKeepAliveClient()


def aggregate_load(runs: list[dict]) -> dict:
    """Totals of several rounds; exact percentiles when every round kept its latencies, else
    request-weighted means of the rounds' percentiles (wrk)."""
    requests = sum(r["requests"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    if runs and all(r["latencies"] is not None for r in runs):
        ordered = sorted(x for r in runs for x in r["latencies"])
        p50, p95, p99 = (1000 * common.percentile(ordered, p) for p in (50, 95, 99))
        how = "exact over all requests"
    else:

        def weighted(key: str) -> float:
            return sum(r[key] * r["requests"] for r in runs) / max(1, requests)

        p50, p95, p99 = weighted("p50_ms"), weighted("p95_ms"), weighted("p99_ms")
        how = "request-weighted mean of the rounds' percentiles (wrk)"
    cpu = sum(r.get("server_cpu_s", 0.0) for r in runs)
    return {
        "requests": requests,
        "seconds": round(seconds, 2),
        "requests_per_s": round(requests / seconds, 1) if seconds else 0.0,
        "errors": sum(r["errors"] for r in runs),
        "latency_ms": {
            "p50": round(p50, 2),
            "p95": round(p95, 2),
            "p99": round(p99, 2),
            "max": round(max((r["max_ms"] for r in runs), default=float("nan")), 2),
        },
        "percentiles": how,
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_request": round(1000 * cpu / requests, 3) if requests else None,
        "rounds": [
            {
                "requests_per_s": round(r["requests"] / r["seconds"], 1) if r["seconds"] else 0,
                "p50_ms": round(r["p50_ms"], 2),
                "p95_ms": round(r["p95_ms"], 2),
                "errors": r["errors"],
            }
            for r in runs
        ],
    }


if __name__ == "__main__":  # `make bench` runs bench/[!_]*.py only; this is a helper
    print("bench/_compliance_data.py: shared helpers of the compliance benchmarks")
