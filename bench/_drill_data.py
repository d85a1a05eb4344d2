"""Data for the DR-drill benchmark: fill an already migrated portal database with N rows.

The drill benchmark backs up and restores "a 1,000,000-row database with the portal's realistic
table mix" and compares that with a bare `pg_dump -Fc` + `pg_restore` of the same database
(`bare_dump_restore_seconds`). For a backup, realistic means the rows sit in the tables a running
portal grows and look like what it writes there: JSON documents of the shapes the apps store,
hex digests, varied messages and paths, timestamps over the last 30 days. Constant values (or
random noise) would make compression, checksums and index builds unrealistically cheap (or
expensive).

The mix is about a month of one mid-sized tenant: 12 services with 48 routes and 24 SLOs,
30 repositories, 120 flags in 3 environments, 5 alert channels, 8 people, 4 API tokens. The
configuration stays small (about 1,500 rows in all); the rows go where a portal's volume is,
the append-mostly tables:

| table | share of rows | what makes it big |
| --- | --- | --- |
| compliance_checkresult | 24 % | every result of every CI run is kept |
| slo_minutesample | 19 % | one row per service, route, version and minute (raw retention) |
| audit_auditevent | the rest, ~17 % | every change, CI run and alert transition |
| slo_slipoint | 13 % | each SLO's good and total events per minute, hour and UTC day |
| compliance_violation | 5 % | deduplicated findings per pull request, open or resolved |
| alerts_deliveryattempt | 5 % | attempt history, retries of failing receivers included |
| alerts_delivery | 4 % | one per alert (or digest), channel and purpose |
| slo_routehour | 4 % | hourly rollups per route: 11 buckets, counters, top errors |
| flags_flagevaluationcount | 3 % | per flag, environment, variant and day |
| compliance_checkrun | 2 % | one per tool and commit, with the response replayed to repeats |
| alerts_alert | 1.5 % | from SLO burn rates, no-data checks, the gate and flags |
| slo_servicehour | 0.9 % | hourly rollups per service |
| compliance_pullrequest | 0.4 % | gate state per pull request |
| alerts_digest, alerts_digest_alerts | 0.2 % | hourly batches of tier-2 alerts |

The audit trail is what a verifier expects: events are appended to the system chain (user
changes) and to a new chain of the new tenant, each hashed with the canonical serialisation of
apps/audit/hashing.py, and both chain heads are updated, so `manage.py verify_audit` passes on
the populated database and on a restored copy. The events are derived from the generated rows
(configuration created, a CI run recorded, an alert raised, repeated, escalated, acknowledged and
resolved, a flag state changed step by step) and point at real ids with real before/after.

Loading: one transaction as the table owner (row-level security does not apply to the owner;
COPY FROM is refused under it). Parent rows are plain INSERTs; the rest is COPYed row by row
(`write_row`). Ids that other rows refer to are reserved from the identity sequences up front, so
children are written without reading anything back. Everything is deterministic given `seed` and
`now` (default: the start of the current UTC hour) in a freshly migrated database, and a second
run into the same database adds a tenant of its own. `ANALYZE` follows the commit.

By hand: `.venv/bin/python bench/_drill_data.py postgresql://opsportal_owner@HOST:5432/DB`.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import operator
import random
import subprocess
import sys
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

# Shares of `rows` per table; the audit trail takes what is left after these and the
# configuration, so that the total is exactly `rows`.
MIX: dict[str, float] = {
    "compliance_checkresult": 0.24,
    "slo_minutesample": 0.19,
    "slo_slipoint": 0.13,
    "compliance_violation": 0.05,
    "alerts_deliveryattempt": 0.05,
    "alerts_delivery": 0.04,
    "slo_routehour": 0.04,
    "flags_flagevaluationcount": 0.03,
    "compliance_checkrun": 0.02,
    "alerts_alert": 0.015,
    "slo_servicehour": 0.009,
    "compliance_pullrequest": 0.004,
    "alerts_digest_alerts": 0.0017,
    "alerts_digest": 0.0003,
}
# Everything written with COPY: MIX, the audit trail and the compliance trends.
COPIED_TABLES = (*MIX, "audit_auditevent", "compliance_ruletrend")
MIN_ROWS = 10_000
MAX_ATTEMPTS = 5  # settings.ALERT_DELIVERY_MAX_ATTEMPTS
DAYS = 30
GENESIS_HASH = "0" * 64
TIME_ZONE = "Europe/Amsterdam"
CI_TOKENS = (0, 1)  # indexes into TOKENS
ROLLOUT_TOKEN = 3

# fmt: off
PEOPLE = (
    ("alice", "jansen", "tenant_admin"), ("bram", "okafor", "operator"),
    ("chen", "li", "operator"), ("dana", "novak", "compliance_admin"),
    ("emeka", "silva", "privacy_officer"), ("fatima", "haddad", "viewer"),
    ("goran", "berg", "operator"), ("hana", "tanaka", "viewer"),
)
TOKENS = (("ci-github", "ci"), ("ci-gitlab", "ci"), ("slo-pusher", "operator"),
          ("release-bot", "operator"))
SERVICES = (  # name, display name, routes
    ("checkout", "Checkout", ("POST /api/v1/checkout", "GET /api/v1/cart",
     "PUT /api/v1/cart/items", "POST /api/v1/checkout/confirm", "GET /healthz")),
    ("payments-gateway", "Payments gateway", ("POST /v2/payments", "POST /v2/refunds",
     "GET /v2/payments/{id}", "POST /v2/webhooks/psp")),
    ("inventory", "Inventory", ("GET /v2/stock", "POST /v2/reservations",
     "DELETE /v2/reservations/{id}", "GET /v2/warehouses")),
    ("catalog", "Product catalog", ("GET /products", "GET /products/{sku}", "GET /categories",
     "GET /products/{sku}/images", "POST /admin/products")),
    ("search", "Search", ("GET /search", "GET /suggest", "POST /reindex")),
    ("identity", "Identity", ("POST /oauth/token", "GET /userinfo", "POST /login",
     "POST /logout", "GET /.well-known/jwks.json")),
    ("orders", "Orders", ("GET /orders", "GET /orders/{id}", "POST /orders/{id}/cancel",
     "GET /orders/{id}/invoice")),
    ("pricing", "Pricing", ("POST /quote", "GET /promotions", "GET /price-lists/{id}")),
    ("shipping", "Shipping", ("POST /shipments", "GET /shipments/{id}/tracking",
     "GET /carriers", "POST /labels")),
    ("notifications", "Notifications", ("POST /send", "GET /templates", "POST /preferences")),
    ("recommendations", "Recommendations", ("GET /recs/home", "GET /recs/product/{sku}",
     "POST /events")),
    ("ledger", "Ledger", ("POST /entries", "GET /balances/{account}", "GET /statements",
     "POST /reconciliations", "GET /accounts/{id}")),
)
TEAMS = ("team-checkout", "team-payments", "team-fulfilment", "team-discovery",
         "team-identity", "team-platform")
BOUNDS = ("5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000")
SHAPE = (0.04, 0.12, 0.33, 0.58, 0.80, 0.935, 0.975, 0.992, 0.998, 0.9995)
ERROR_MESSAGES = (
    "upstream timeout after 2000 ms calling inventory /v2/stock",
    "psycopg.errors.SerializationFailure: could not serialize access due to concurrent update",
    "KeyError: 'customer_id' in views.submit_order",
    "redis.exceptions.ConnectionError: Error 111 connecting to cache:6379. Connection refused.",
    "HTTP 503 from payments-gateway: circuit open",
    "ValueError: invalid literal for int() with base 10: 'undefined'",
    "TimeoutError: read timed out (pool=search, 5000 ms)",
    "IntegrityError: duplicate key value violates unique constraint order_ref",
    "grpc StatusCode.UNAVAILABLE: connection reset by peer",
    "JSONDecodeError: Expecting value: line 1 column 1 (char 0) from pricing /quote",
    "botocore ClientError: SlowDown when calling PutObject",
    "asyncio.CancelledError during shutdown of worker",
)
REPOSITORIES = tuple(f"acme/{name}" for name in (
    "checkout-web", "checkout-api", "payments", "payments-psp-adapter", "inventory-service",
    "catalog-api", "catalog-importer", "search-indexer", "search-api", "identity", "orders",
    "pricing-engine", "shipping", "label-printer", "notifications", "recs-model", "recs-api",
    "ledger", "ledger-reports", "platform-terraform", "platform-helm", "ci-templates",
    "mobile-bff", "admin-console", "data-pipelines", "feature-store", "edge-proxy", "auth-sdk",
    "design-system", "docs-portal",
))
TOOLS = {  # tool: (source format, catalog rules it reports, the tool's own rule ids)
    "policy": ("native", ("R04", "R09", "R10", "R17", "R23", "R25"), ("",)),
    "ruff": ("sarif", ("R19", "R20", "R22", "R11"), ("E501", "F401", "B008", "S105", "UP035",
             "SIM117", "RUF012", "I001", "T201", "G004")),
    "semgrep": ("sarif", ("R03", "R11", "R15"), (
        "python.django.security.injection.sql-injection",
        "python.lang.security.audit.eval-detected",
        "python.requests.security.disabled-cert-validation",
        "generic.secrets.security.detected-jwt-token")),
    "trivy": ("sarif", ("R02", "R07", "R12", "R08"), ("CVE-2024-3651", "CVE-2023-45803",
              "CVE-2024-35195", "CVE-2024-6345", "CVE-2023-50782", "AVD-DS-0001", "AVD-KSV-0014")),
    "conftest": ("conftest", ("R05", "R06", "R13", "R14", "R16", "R18", "R24"), ("main.deny",
                 "k8s.probes", "k8s.security_context", "migrations.reversible", "lockfile.sync")),
    "checkov": ("sarif", ("R07", "R14", "R18"), ("CKV_AWS_20", "CKV_AWS_144", "CKV_K8S_8",
                "CKV_K8S_9", "CKV2_AWS_6")),
    "gitleaks": ("sarif", ("R01",), ("generic-api-key", "aws-access-token", "private-key")),
    "hadolint": ("sarif", ("R21", "R06"), ("DL3008", "DL3002", "DL3018", "DL3059", "DL4006")),
}
DIRS = ("src", "app", "services", "lib", "deploy", "charts", "terraform", "tests", "cmd")
PACKAGES = ("api", "core", "billing", "orders", "auth", "search", "worker", "adapters", "db",
            "utils", "web", "jobs", "events", "models")
MODULES = ("views", "handlers", "serializers", "client", "tasks", "settings", "models",
           "repository", "service", "routes", "schema", "middleware", "cache", "queue")
EXTENSIONS = ("py", "py", "py", "ts", "go", "yaml", "tf", "json", "sql")
VIOLATION_TEXT = ("{id} found in {name}: {detail}", "{detail} ({id}) in function {name}",
                  "{name}: {detail}; see the rule's runbook", "{detail} at {name} ({id})")
PASS_TEXT = ("{id}: {name} satisfies the policy", "{id} checked {name}: ok",
             "no findings for {id} in {name}")
DETAILS = (
    "hard-coded credential looks like an API key", "package has a known vulnerability with a fix",
    "raw SQL built with string formatting", "container runs as root", "missing readiness probe",
    "line too long (132 > 100)", "unused import", "function call in argument defaults",
    "print found, use the logger", "base image not pinned to a digest",
    "bucket without versioning", "certificate verification disabled",
    "migration drops a column in one step", "alert rule has no runbook annotation",
    "changed path has no code owner", "log statement may include personal data",
    "lockfile out of sync with the manifest", "licence GPL-3.0 not on the approved list",
)
FLAG_AREAS = ("checkout", "payments", "search", "catalog", "orders", "identity", "shipping",
              "recs", "pricing", "ledger", "mobile", "admin")
FLAG_FEATURES = ("new-flow", "one-click", "v2-api", "dark-launch", "kill-switch", "beta-banner",
                 "fast-path", "async-writes", "cache-warmup", "ab-copy")
SEGMENTS = (
    ("internal-users", {"attribute": "email", "op": "ends_with", "values": ["@acme.example"]}),
    ("beta-testers", {"attribute": "groups", "op": "contains", "values": ["beta"]}),
    ("eu-markets", {"attribute": "country", "op": "in", "values": ["NL", "DE", "BE", "FR"]}),
    ("us-markets", {"attribute": "country", "op": "in", "values": ["US", "CA"]}),
    ("mobile-app", {"attribute": "client", "op": "in", "values": ["ios", "android"]}),
    ("big-accounts", {"attribute": "plan", "op": "in", "values": ["enterprise"]}),
    ("new-customers", {"all": [{"attribute": "orders", "op": "lt", "values": [2]},
                               {"attribute": "country", "op": "in", "values": ["NL"]}]}),
    ("staff-devices", {"attribute": "device_id", "op": "starts_with", "values": ["acme-"]}),
)
CHANNELS = (("oncall-pagerduty", "pagerduty"), ("sre-slack", "slack"),
            ("platform-slack", "slack"), ("oncall-email", "email"), ("incident-bridge", "webhook"))
KINDS_BY_TIER = {1: ("pagerduty", "slack", "email", "webhook"), 2: ("slack", "email", "webhook"),
                 3: ("email",)}
HTTP_ERRORS = (
    (500, "HTTP 500 from receiver: Internal Server Error"), (502, "HTTP 502 Bad Gateway"),
    (503, "HTTP 503 Service Unavailable (retry-after 30)"), (429, "HTTP 429 Too Many Requests"),
    (None, "ConnectTimeout: timed out after 5.0 s"),
    (None, "ConnectError: [Errno 111] Connection refused"),
    (None, "ReadTimeout: the read operation timed out"), (400, "HTTP 400 invalid routing key"),
)
# fmt: on
ALERT_FIELDS = "source tier dedup_key title status notify_state acknowledged_by resolved_by"

Actor = tuple[int | None, int | None, str, str | None]  # user id, token id, label, ip
SYSTEM: Actor = (None, None, "system", None)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _canonical(fields: dict[str, Any]) -> bytes:
    """apps/audit/hashing.py's canonical form: `json.dumps(fields, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`, which orjson reproduces byte for byte for what
    the events here hold (ASCII keys; str, int, bool, None and plain floats), five times faster.
    """
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _pick(row: dict[str, Any], names: str) -> dict[str, Any]:
    """The audited fields of a row, as its audit snapshot."""
    return {name: row[name] for name in names.split()}


def _split(total: int, parts: int, rng: random.Random, *, minimum: int = 1) -> list[int]:
    """`parts` ints summing to `total`, skewed (a few large, many small), each at least
    `minimum` when `total` allows it."""
    if parts <= 0:
        return []
    floor = minimum if total >= minimum * parts else 0
    rest = total - floor * parts
    weights = [rng.expovariate(1.0) + 0.15 for _ in range(parts)]
    scale = rest / sum(weights)
    counts = [int(w * scale) for w in weights]
    for i in rng.sample(range(parts), rest - sum(counts)):
        counts[i] += 1
    return [floor + c for c in counts]


# Traffic relative to the daily mean per UTC hour: low at night, peak in the afternoon.
DIURNAL = tuple(1 + 0.55 * math.sin((hour - 9) / 24 * 2 * math.pi) for hour in range(24))


def _buckets(requests: int, shares: Sequence[float], jitter: float) -> dict[str, int]:
    """Cumulative latency buckets in ms, as services push them."""
    buckets = {}
    previous = 0
    for key, share in zip(BOUNDS, shares, strict=True):
        previous = max(previous, min(requests, round(requests * share * jitter)))
        buckets[key] = previous
    buckets["+Inf"] = requests
    return buckets


def _error_fingerprint(k: int) -> str:
    return f"{(k * 2654435761) % 2**32:08x}{k:04d}"


@dataclass
class _Service:
    id: int
    name: str
    routes: tuple[str, ...]
    version: str
    rates: list[float]  # requests a minute per route at the daily mean
    shapes: list[list[float]]  # cumulative latency shares per route
    error_ratio: float
    business: bool  # reports business counters (orders) next to its requests


@dataclass
class _Run:
    id: int
    pull_request_id: int
    pull_request: str  # owner/name#number
    commit_sha: str
    tool: str
    received_at: datetime
    results: int
    violations: int
    new_violations: int
    score: int
    decision: str
    received: str = ""  # received_at in ISO format, written to several tables

    def __post_init__(self) -> None:
        self.received = self.received_at.isoformat()


@dataclass
class _Event:
    at: datetime
    action: str
    target: str  # "app.model:id"
    after: dict | None
    before: dict | None = None
    actor: Actor = SYSTEM
    system: bool = False


@dataclass
class _Ctx:
    cur: psycopg.Cursor
    seed: int
    now: datetime
    start: datetime
    tenant_id: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    users: list[tuple[int, str]] = field(default_factory=list)
    tokens: list[tuple[int, str]] = field(default_factory=list)
    rules: dict[str, tuple[str, str]] = field(default_factory=dict)  # id: (tier, name)
    services: list[_Service] = field(default_factory=list)
    slos: list[tuple[int, str, int, str]] = field(default_factory=list)  # id, name, service, type
    channels: list[tuple[int, str]] = field(default_factory=list)  # id, kind
    environments: list[tuple[int, str]] = field(default_factory=list)  # id, key
    flags: list[tuple[int, str, list[str]]] = field(default_factory=list)  # id, key, variants
    states: list[tuple[int, int, int, dict]] = field(default_factory=list)  # id, flag, env, snap
    runs: list[_Run] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}:{name}")

    def unique_rng(self, name: str) -> random.Random:
        """For values unique in the whole database (token prefixes, idempotency keys)."""
        return random.Random(f"{self.seed}:{self.tenant_id}:{name}")

    def at(self, rng: random.Random, after: datetime | None = None) -> datetime:
        """A time in the window (after `after` if given), never in the future."""
        low = (after or self.start).timestamp()
        high = self.now.timestamp()
        return datetime.fromtimestamp(low + (high - low) * rng.random(), UTC)

    def user(self, rng: random.Random, index: int | None = None) -> Actor:
        user_id, username = self.users[rng.randrange(len(self.users)) if index is None else index]
        ip = f"10.{rng.randrange(8, 12)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        return (user_id, None, username, ip)

    def token(self, rng: random.Random, index: int) -> Actor:
        token_id, name = self.tokens[index]
        return (
            None,
            token_id,
            f"token:{name}",
            f"172.16.{rng.randrange(32)}.{rng.randrange(1, 255)}",
        )

    def event(self, at: datetime, action: str, target: str, after: dict | None, **kw: Any) -> None:
        self.events.append(_Event(at, action, target, after, **kw))


# --- writing -------------------------------------------------------------------------------------


def _insert(ctx: _Ctx, table: str, rows: list[dict[str, Any]]) -> list[int]:
    """Plain INSERTs of a few parent rows (dicts and lists go to jsonb); their ids, in order."""
    columns = list(rows[0])
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    params = [
        [Jsonb(v) if isinstance(v, dict | list) else v for v in map(row.get, columns)]
        for row in rows
    ]
    ctx.cur.executemany(statement, params, returning=True)
    ids = [ctx.cur.fetchone()[0]]
    while ctx.cur.nextset():
        ids.append(ctx.cur.fetchone()[0])
    ctx.counts[table] = ctx.counts.get(table, 0) + len(rows)
    return ids


def _isoformat(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The rows with their dates and times as ISO strings, which COPY reads as well and
    psycopg writes several times faster than datetime objects."""
    for row in rows:
        yield {k: v.isoformat() if isinstance(v, date) else v for k, v in row.items()}


def _copy(ctx: _Ctx, table: str, rows: Iterable[dict[str, Any]]) -> int:
    """COPY dict rows (the first row's keys are the columns): jsonb values as JSON text, times
    preferably as ISO strings (see `_isoformat`)."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    columns = list(first)
    values = operator.itemgetter(*columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    n = 0
    with ctx.cur.copy(statement) as copy:
        write = copy.write_row
        for row in chain((first,), rows):
            write(values(row))
            n += 1
    ctx.counts[table] = ctx.counts.get(table, 0) + n
    return n


def _drop_for_load(ctx: _Ctx, tables: Sequence[str]) -> list[sql.Composable]:
    """Drop the foreign keys and secondary indexes (unique ones included) of the tables about
    to be loaded; return the statements that recreate them, with the same names and
    definitions, for `_restore_after_load` before the commit.

    Foreign keys checked row by row at the commit, and indexes updated row by row, cost more
    than the COPY itself; recreated, each index is one sorted build and each foreign key one
    join, and the unique ones check the data as they would have. Partial indexes stay: they
    are small, and PostgreSQL does not print some of their conditions back exactly as created
    (the schema would differ from a migrated one in text, if not in meaning).
    """
    ctx.cur.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype IN ('f', 'u') AND conrelid = ANY(%s::regclass[]) ORDER BY contype, 1, 2",
        (list(tables),),
    )
    constraints = ctx.cur.fetchall()
    ctx.cur.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary AND i.indpred IS NULL"
        " AND NOT EXISTS"
        " (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype <> 'f')"
        " ORDER BY 1",
        (list(tables),),
    )
    indexes = ctx.cur.fetchall()
    restore: list[sql.Composable] = []
    for table, name, definition in constraints:  # foreign keys first, back last
        ctx.cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
        restore.insert(
            0,
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
            ),
        )
    for name, definition in indexes:
        ctx.cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        restore.insert(0, sql.SQL(definition))
    return restore


def _restore_after_load(ctx: _Ctx, statements: list[sql.Composable]) -> None:
    ctx.cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for statement in statements:
        ctx.cur.execute(statement)


def _reserve_ids(ctx: _Ctx, table: str, n: int) -> int:
    """The first of `n` consecutive ids taken from the table's identity sequence."""
    ctx.cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
    sequence = ctx.cur.fetchone()[0]
    ctx.cur.execute("SELECT nextval(%s)", (sequence,))
    first = ctx.cur.fetchone()[0]
    if n > 1:
        ctx.cur.execute("SELECT setval(%s, %s)", (sequence, first + n - 1))
    return first


# --- tenant, people, configuration ---------------------------------------------------------------


def _tenant(ctx: _Ctx) -> None:
    rng = ctx.rng("tenant")
    ctx.cur.execute("SELECT slug FROM tenancy_tenant WHERE slug LIKE 'drill-bench%%'")
    taken = {row[0] for row in ctx.cur.fetchall()}
    n = 1
    while (slug := "drill-bench" if n == 1 else f"drill-bench-{n}") in taken:
        n += 1
    created = ctx.start - timedelta(days=2)
    tenant = {"slug": slug, "name": f"Drill bench {n}", "time_zone": TIME_ZONE, "version": 1}
    (ctx.tenant_id,) = _insert(ctx, "tenancy_tenant", [{**tenant, "created_at": created}])
    ctx.event(created, "tenant.created", f"tenancy.tenant:{ctx.tenant_id}", tenant)

    users = [
        {
            "password": f"!{_hex(rng, 40)}",
            "last_login": ctx.at(rng, ctx.now - timedelta(days=3)),
            "is_superuser": False,
            "username": f"{first}.{last}@{slug}",
            "first_name": first.title(),
            "last_name": last.title(),
            "email": f"{first}.{last}@example.com",
            "is_staff": True,
            "is_active": True,
            "date_joined": created,
        }
        for first, last, _ in PEOPLE
    ]
    ids = _insert(ctx, "auth_user", users)
    ctx.users = [(user_id, user["username"]) for user_id, user in zip(ids, users, strict=True)]
    for user_id, user in zip(ids, users, strict=True):
        after = {**_pick(user, "username email is_staff is_superuser is_active"), "groups": []}
        ctx.event(created, "user.created", f"auth.user:{user_id}", after, system=True)
    memberships = [
        {"tenant_id": ctx.tenant_id, "user_id": user_id, "role": role, "created_at": created}
        for user_id, (_, _, role) in zip(ids, PEOPLE, strict=True)
    ]
    for membership_id, row in zip(
        _insert(ctx, "tenancy_membership", memberships), memberships, strict=True
    ):
        target = f"tenancy.membership:{membership_id}"
        after = _pick(row, "user_id role")
        ctx.event(created, "membership.created", target, after, actor=ctx.user(rng, 0))

    unique = ctx.unique_rng("tokens")
    tokens = [
        {
            "tenant_id": ctx.tenant_id,
            "name": name,
            "role": role,
            "prefix": _hex(unique, 12),
            "secret_hash": _hex(rng, 64),
            "created_by_id": ctx.users[0][0],
            "created_at": created,
            "expires_at": None,
            "revoked_at": None,
            "last_used_at": ctx.now - timedelta(minutes=rng.randrange(1, 300)),
        }
        for name, role in TOKENS
    ]
    ids = _insert(ctx, "tenancy_apitoken", tokens)
    ctx.tokens = [(token_id, token["name"]) for token_id, token in zip(ids, tokens, strict=True)]
    for token_id, token in zip(ids, tokens, strict=True):
        after = _pick(token, "name role prefix expires_at revoked_at")
        target = f"tenancy.apitoken:{token_id}"
        ctx.event(created, "api_token.created", target, after, actor=ctx.user(rng, 0))


def _compliance_config(ctx: _Ctx) -> None:
    rng = ctx.rng("compliance-config")
    ctx.cur.execute("SELECT id, tier, name FROM compliance_rule ORDER BY id")
    ctx.rules = {rule_id: (tier, name) for rule_id, tier, name in ctx.cur.fetchall()}
    if not {rule for _, rules, _ in TOOLS.values() for rule in rules} <= set(ctx.rules):
        raise RuntimeError("the rule catalog R01-R25 is not loaded: is the database migrated?")
    created = ctx.start - timedelta(days=1)
    config = {
        "weight_block": 10,
        "weight_override": 3,
        "weight_warning": 1,
        "pass_threshold": 75,
        "unmapped_results": "catch_all",
        "catch_all_rule_id": "R19",
    }
    rows = [{"tenant_id": ctx.tenant_id, **config, "version": 2}]
    (config_id,) = _insert(ctx, "compliance_compliancesettings", rows)
    target = f"compliance.compliancesettings:{config_id}"
    ctx.event(created, "compliance_settings.updated", target, config, actor=ctx.user(rng, 3))

    mappings = [
        {
            "tenant_id": ctx.tenant_id,
            "tool": tool,
            "pattern": f"{tool_rule[:3]}*" if i == 2 else tool_rule,
            "rule_id": rules[i % len(rules)],
            "note": f"mapped by {ctx.users[3][1]}",
            "created_at": created,
        }
        for tool, (_, rules, tool_rules) in list(TOOLS.items())[1:]
        for i, tool_rule in enumerate(tool_rules[:3])
    ]
    for mapping_id, row in zip(
        _insert(ctx, "compliance_toolrulemapping", mappings), mappings, strict=True
    ):
        after = _pick(row, "tool pattern rule_id note")
        target = f"compliance.toolrulemapping:{mapping_id}"
        ctx.event(created, "toolrulemapping.created", target, after, actor=ctx.user(rng, 3))

    states = [
        {
            "tenant_id": ctx.tenant_id,
            "rule_id": rule_id,
            "last_checked_at": ctx.now - timedelta(seconds=rng.randrange(30, 7200)),
        }
        for rule_id in ctx.rules
    ]
    _insert(ctx, "compliance_rulecheckstate", states)

    def trends() -> Iterator[dict[str, Any]]:
        for rule_id, (tier, _) in ctx.rules.items():
            rate = {"BLOCK": 0.97, "OVERRIDE": 0.9, "WARNING": 0.8}[tier] - rng.uniform(0, 0.05)
            for d in range(DAYS, 0, -1):
                day = ctx.now.date() - timedelta(days=d)
                evaluated = rng.randrange(200, 4000)
                passing = min(evaluated, round(evaluated * (rate + rng.uniform(-0.03, 0.03))))
                built = datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1)
                yield {
                    "tenant_id": ctx.tenant_id,
                    "rule_id": rule_id,
                    "day": day,
                    "evaluated": evaluated,
                    "passing": passing,
                    "violations": evaluated - passing,
                    "compliance_rate": round(passing / evaluated, 6),
                    "built_at": built + timedelta(minutes=rng.randrange(5, 60)),
                }

    _copy(ctx, "compliance_ruletrend", _isoformat(trends()))


def _slo_config(ctx: _Ctx) -> None:
    rng = ctx.rng("slo-config")
    created = ctx.start - timedelta(days=1)
    settings = {
        "auto_create_services": False,
        "report_enabled": True,
        "report_hour": 8,
        "report_channel_kinds": ["email", "slack"],
    }
    rows = [{"tenant_id": ctx.tenant_id, **settings, "version": 2}]
    (settings_id,) = _insert(ctx, "slo_slosettings", rows)
    target = f"slo.slosettings:{settings_id}"
    ctx.event(created, "slosettings.created", target, settings, actor=ctx.user(rng, 1))

    services = []
    for i, (name, display, routes) in enumerate(SERVICES):
        owner = TEAMS[i % len(TEAMS)]
        business = i % 3 == 0
        services.append(
            {
                "tenant_id": ctx.tenant_id,
                "name": name,
                "display_name": display,
                "description": f"{display}: owned by {owner}, {len(routes)} routes.",
                "owner": owner,
                "no_data_minutes": 15 if i % 4 else 30,
                "canary_policy": {"max_p95_ms": 400 + 100 * (i % 4)} if i % 2 else {},
                "report_ratios": (
                    [{"name": "Order success", "good": "orders_ok", "total": "orders"}]
                    if business
                    else []
                ),
                "counter_aggregates": {"orders": "sum", "queue_depth": "last"} if business else {},
                "last_data_at": ctx.now,
                "version": 1 + i % 3,
                "created_at": created + timedelta(hours=i),
            }
        )
    ids = _insert(ctx, "slo_service", services)
    audited = (
        "name display_name owner no_data_minutes canary_policy report_ratios counter_aggregates"
    )
    for i, (service_id, row) in enumerate(zip(ids, services, strict=True)):
        base = 20 + (i * 7919) % 400
        routes = SERVICES[i][2]
        ctx.services.append(
            _Service(
                id=service_id,
                name=row["name"],
                routes=routes,
                version=f"2026.{1 + i % 9}.{rng.randrange(20)}",
                rates=[base * rng.uniform(0.05, 1.0) for _ in routes],
                shapes=[[s ** (1 + rng.uniform(0, 0.4)) for s in SHAPE] for _ in routes],
                error_ratio=rng.uniform(0.0003, 0.004),
                business=bool(row["counter_aggregates"]),
            )
        )
        target = f"slo.service:{service_id}"
        after = _pick(row, audited)
        ctx.event(row["created_at"], "service.created", target, after, actor=ctx.user(rng))

    slos = []
    for s, service in enumerate(ctx.services):
        for kind, objective, threshold in (
            ("availability", rng.choice(("99.9", "99.95", "99.5")), None),
            ("latency", rng.choice(("99", "99.5", "95")), rng.choice((250.0, 500.0, 1000.0))),
        ):
            slos.append(
                {
                    "tenant_id": ctx.tenant_id,
                    "service_id": service.id,
                    "name": f"{service.name}-{kind}",
                    "display_name": f"{service.name} {kind}",
                    "description": f"{kind.title()} of {service.name} over 30 days.",
                    "sli_type": kind,
                    "objective_percent": objective,
                    "window_days": 30,
                    "latency_threshold_ms": threshold,
                    "good_counter": "",
                    "total_counter": "",
                    "alerting": {},
                    "min_events": 100,
                    "enabled": True,
                    "version": 1,
                    "created_at": created + timedelta(hours=2 + s),
                }
            )
    ids = _insert(ctx, "slo_slo", slos)
    audited = (
        "service_id name display_name sli_type objective_percent window_days "
        "latency_threshold_ms good_counter total_counter alerting min_events enabled"
    )
    for n, (slo_id, row) in enumerate(zip(ids, slos, strict=True)):
        ctx.slos.append((slo_id, row["name"], n // 2, row["sli_type"]))
        target = f"slo.slo:{slo_id}"
        ctx.event(
            row["created_at"], "slo.created", target, _pick(row, audited), actor=ctx.user(rng)
        )

    statuses = []
    for slo_id, _, _, _ in ctx.slos:
        total = rng.uniform(2e6, 4e7)
        budget = rng.uniform(-0.2, 1.0)
        burn = {window: round(rng.uniform(0, 3), 3) for window in ("5m", "1h", "6h", "3d")}
        statuses.append(
            {
                "tenant_id": ctx.tenant_id,
                "slo_id": slo_id,
                "evaluated_at": ctx.now,
                "window_good": total * rng.uniform(0.995, 0.9999),
                "window_total": total,
                "budget_remaining": budget,
                "burn_rates": burn,
                "firing": ["ticket"] if budget < 0 else [],
            }
        )
    _insert(ctx, "slo_slostatus", statuses)


def _alert_config(ctx: _Ctx) -> None:
    rng = ctx.rng("alert-config")
    created = ctx.start - timedelta(hours=20)
    channels = []
    for name, kind in CHANNELS:
        secret = "" if kind == "email" else f"gAAAAA{_hex(rng, 120)}"
        url = {
            "slack": f"https://hooks.slack.com/services/T0{_hex(rng, 8).upper()}",
            "webhook": "https://bridge.example.com/opsportal/events",
        }.get(kind, "")
        channels.append(
            {
                "tenant_id": ctx.tenant_id,
                "name": name,
                "kind": kind,
                "url": url,
                "emails": "oncall@example.com, sre-leads@example.com" if kind == "email" else "",
                "secret_ciphertext": secret,
                "secret_hint": f"...{_hex(rng, 4)}" if secret else "",
                "enabled": True,
                "created_at": created,
                "version": 1,
            }
        )
    ids = _insert(ctx, "alerts_channel", channels)
    ctx.channels = [
        (channel_id, row["kind"]) for channel_id, row in zip(ids, channels, strict=True)
    ]
    for channel_id, row in zip(ids, channels, strict=True):
        after = _pick(row, "name kind url emails secret_hint enabled")
        target = f"alerts.channel:{channel_id}"
        ctx.event(created, "channel.saved", target, after, actor=ctx.user(rng, 0))
    health = [
        {
            "tenant_id": ctx.tenant_id,
            "channel_id": channel_id,
            "state": "closed",
            "consecutive_failures": 0,
            "last_success_at": ctx.now - timedelta(minutes=rng.randrange(1, 90)),
            "last_failure_at": ctx.now - timedelta(hours=rng.randrange(2, 200)),
            "last_error": rng.choice(HTTP_ERRORS)[1],
        }
        for channel_id in ids
    ]
    _insert(ctx, "alerts_channelhealth", health)

    policies = []
    for tier, mode, escalate in ((1, "immediate", 15), (2, "batched", 240), (3, "summary", None)):
        policies.append(
            {
                "tenant_id": ctx.tenant_id,
                "tier": tier,
                "channel_kinds": list(KINDS_BY_TIER[tier]),
                "mode": mode,
                "dedup_window_minutes": 60,
                "threshold_count": 1,
                "threshold_window_minutes": 60,
                "batch_interval_minutes": 60,
                "max_batches_per_day": 5,
                "quiet_hours": tier == 2,
                "business_start": "09:00",
                "business_end": "18:00",
                "business_days": [0, 1, 2, 3, 4],
                "summary_cadence": {1: "none", 2: "daily", 3: "weekly"}[tier],
                "summary_time": "09:00",
                "summary_weekday": 0,
                "summary_min_count": 10 if tier == 3 else 0,
                "escalate_after_minutes": escalate,
                "version": 1,
            }
        )
    audited = (
        "tier channel_kinds mode dedup_window_minutes threshold_count threshold_window_minutes "
        "batch_interval_minutes max_batches_per_day quiet_hours business_start business_end "
        "business_days summary_cadence summary_time summary_weekday summary_min_count "
        "escalate_after_minutes"
    )
    for policy_id, row in zip(_insert(ctx, "alerts_policy", policies), policies, strict=True):
        after = _pick(row, audited)
        ctx.event(created, "policy.created", f"alerts.policy:{policy_id}", after)


def _flags_config(ctx: _Ctx) -> None:
    rng = ctx.rng("flags-config")
    created = ctx.start - timedelta(hours=18)
    environments = [
        {
            "tenant_id": ctx.tenant_id,
            "key": key,
            "name": key.title(),
            "sort_order": order,
            "config_version": rng.randrange(50, 3000),
            "requires_approval": key == "production",
            "kill_switch_exempt": True,
            "created_at": created,
        }
        for order, key in enumerate(("development", "staging", "production"))
    ]
    ids = _insert(ctx, "flags_environment", environments)
    ctx.environments = [(env_id, row["key"]) for env_id, row in zip(ids, environments, strict=True)]
    for env_id, row in zip(ids, environments, strict=True):
        after = _pick(row, "key name sort_order requires_approval kill_switch_exempt")
        target = f"flags.environment:{env_id}"
        ctx.event(created, "flag_environment.created", target, after, actor=ctx.user(rng, 0))
    unique = ctx.unique_rng("environment-keys")
    keys = [
        {
            "tenant_id": ctx.tenant_id,
            "environment_id": env_id,
            "name": f"{key}-services",
            "prefix": _hex(unique, 12),
            "secret_hash": _hex(rng, 64),
            "created_by_id": ctx.users[0][0],
            "created_at": created,
        }
        for env_id, key in ctx.environments
    ]
    _insert(ctx, "flags_environmentkey", keys)
    segments = [
        {
            "tenant_id": ctx.tenant_id,
            "key": key,
            "name": key.replace("-", " ").capitalize(),
            "description": f"Segment {key}",
            "conditions": conditions,
            "version": 1 + i % 3,
            "updated_at": created,
        }
        for i, (key, conditions) in enumerate(SEGMENTS)
    ]
    for segment_id, row in zip(_insert(ctx, "flags_segment", segments), segments, strict=True):
        after = _pick(row, "key name description conditions version")
        target = f"flags.segment:{segment_id}"
        ctx.event(created, "segment.created", target, after, actor=ctx.user(rng))

    flags = []
    for i in range(len(FLAG_AREAS) * len(FLAG_FEATURES)):
        area, feature = FLAG_AREAS[i % len(FLAG_AREAS)], FLAG_FEATURES[i // len(FLAG_AREAS)]
        kinds = ("release", "release", "experiment", "operational", "permission")
        kind = "kill_switch" if feature == "kill-switch" else rng.choice(kinds)
        experiment = kind == "experiment"
        flags.append(
            {
                "tenant_id": ctx.tenant_id,
                "key": f"{area}.{feature}",
                "name": f"{area.title()} {feature.replace('-', ' ')}",
                "description": f"{kind.replace('_', ' ').title()} flag for {area}: {feature}.",
                "value_type": "string" if experiment else "boolean",
                "variants": (
                    {"control": "control", "treatment-a": "a", "treatment-b": "b"}
                    if experiment
                    else {"on": True, "off": False}
                ),
                "kind": kind,
                "owner": TEAMS[i % len(TEAMS)],
                "tags": [area, kind],
                "archived": i % 29 == 28,
                "version": 1 + i % 4,
                "created_at": created + timedelta(minutes=i),
                "updated_at": ctx.at(rng),
            }
        )
    ids = _insert(ctx, "flags_flag", flags)
    audited = "key name description value_type variants kind owner tags archived"
    for flag_id, row in zip(ids, flags, strict=True):
        ctx.flags.append((flag_id, row["key"], list(row["variants"])))
        after = {**_pick(row, audited), "archived": False, "version": 1}
        target = f"flags.flag:{flag_id}"
        ctx.event(row["created_at"], "flag.created", target, after, actor=ctx.user(rng))

    states = []
    for flag_id, _, variants in ctx.flags:
        for env_id, env_key in ctx.environments:
            enabled = rng.random() < (0.6 if env_key == "production" else 0.9)
            rules = []
            if rng.random() < 0.4:
                rules = [{"segment": rng.choice(SEGMENTS)[0], "variant": variants[0]}]
            if len(variants) == 3:
                split = [
                    {"variant": v, "weight": w} for v, w in zip(variants, (50, 25, 25), strict=True)
                ]
                fallthrough = {"split": split}
            else:
                fallthrough = {"variant": variants[0]} if rng.random() < 0.5 else {}
            states.append(
                {
                    "tenant_id": ctx.tenant_id,
                    "flag_id": flag_id,
                    "environment_id": env_id,
                    "enabled": enabled,
                    "default_variant": variants[-1] if len(variants) == 2 else variants[0],
                    "rules": rules,
                    "fallthrough": fallthrough,
                    "killed_at": None,
                    "last_evaluated_at": (
                        ctx.now - timedelta(seconds=rng.randrange(1, 600)) if enabled else None
                    ),
                    "version": rng.randrange(1, 12),
                    "updated_at": ctx.at(rng),
                }
            )
    ids = _insert(ctx, "flags_flagstate", states)
    audited = "enabled default_variant rules fallthrough killed_at version"
    for n, (state_id, row) in enumerate(zip(ids, states, strict=True)):
        environments = len(ctx.environments)
        ctx.states.append((state_id, n // environments, n % environments, _pick(row, audited)))


# --- compliance: pull requests, runs, results, violations ----------------------------------------


def _compliance(ctx: _Ctx, n_prs: int, n_runs: int, n_results: int, n_violations: int) -> None:
    rng = ctx.rng("compliance")
    tiers = {rule_id: tier for rule_id, (tier, _) in ctx.rules.items()}
    files = [
        f"{rng.choice(DIRS)}/{rng.choice(PACKAGES)}/{rng.choice(MODULES)}_{i % 7}."
        f"{rng.choice(EXTENSIONS)}"
        for i in range(900)
    ]
    pr_first = _reserve_ids(ctx, "compliance_pullrequest", n_prs)
    run_first = _reserve_ids(ctx, "compliance_checkrun", n_runs)
    numbers = {repository: rng.randrange(100, 4000) for repository in REPOSITORIES}
    opened = sorted(ctx.at(rng) for _ in range(n_prs))
    runs_per_pr = _split(n_runs, n_prs, rng)
    results_per_run = _split(n_results, n_runs, rng)
    pull_requests = []
    for p, (created, count) in enumerate(zip(opened, runs_per_pr, strict=True)):
        repository = rng.choice(REPOSITORIES)
        numbers[repository] += rng.randrange(1, 4)
        name = f"{repository}#{numbers[repository]}"
        tools = rng.sample(list(TOOLS), min(len(TOOLS), rng.choice((1, 2, 2, 3, 4))))
        at = created
        commit = _hex(rng, 40)
        score, decision = 100, "PASS"
        for r in range(count):
            if r and r % len(tools) == 0:  # a new commit, every tool runs again
                commit = _hex(rng, 40)
                at = min(ctx.now, at + timedelta(minutes=rng.randrange(5, 600)))
            results = results_per_run[len(ctx.runs)]
            violations = min(results, int(results * rng.uniform(0.0, 0.3)))
            score = max(0, 100 - round(violations * rng.uniform(0.5, 3)))
            decision = "PASS"
            if score < 75:
                decision = rng.choice(("FAIL", "BLOCKED", "OVERRIDE_APPROVED"))
            ctx.runs.append(
                _Run(
                    id=run_first + len(ctx.runs),
                    pull_request_id=pr_first + p,
                    pull_request=name,
                    commit_sha=commit,
                    tool=tools[r % len(tools)],
                    received_at=min(ctx.now, at + timedelta(seconds=rng.randrange(20, 900))),
                    results=results,
                    violations=violations,
                    new_violations=min(violations, rng.randrange(0, 6)),
                    score=score,
                    decision=decision,
                )
            )
        pull_requests.append(
            {
                "id": pr_first + p,
                "tenant_id": ctx.tenant_id,
                "repository": repository,
                "number": numbers[repository],
                "head_sha": commit,
                "score": score,
                "decision": decision,
                "last_run_at": ctx.runs[-1].received_at,
                "created_at": created,
                "version": 1 + count,
            }
        )
    _copy(ctx, "compliance_pullrequest", _isoformat(pull_requests))

    def run_rows() -> Iterator[dict[str, Any]]:
        for run in ctx.runs:
            source_format = TOOLS[run.tool][0]
            suppressed = min(run.results - run.violations, rng.randrange(0, 3))
            resolved = rng.randrange(0, 4)
            passed = run.results - run.violations
            summary = (
                f"{run.violations} violations, {run.new_violations} new, in {run.results} "
                f"results from {run.tool}."
            )
            response = {
                "id": run.id,
                "repository": run.pull_request.split("#")[0],
                "pull_request": int(run.pull_request.split("#")[1]),
                "commit_sha": run.commit_sha,
                "tool": run.tool,
                "format": source_format,
                "received_at": run.received_at.isoformat(),
                "score": run.score,
                "threshold": 75,
                "decision": run.decision,
                "can_merge": run.decision in ("PASS", "OVERRIDE_APPROVED"),
                "counts": {
                    "open": {"BLOCK": rng.randrange(3), "OVERRIDE": rng.randrange(5)},
                    "overridden": {"OVERRIDE": rng.randrange(2)},
                },
                "results": {
                    "total": run.results,
                    "passed": passed,
                    "violations": run.violations,
                    "suppressed": suppressed,
                    "ignored": 0,
                },
                "new_violations": run.new_violations,
                "resolved_violations": resolved,
                "blocking_violations": [],
                "blocking_total": 0,
                "check_run": {
                    "name": "opsportal/compliance",
                    "head_sha": run.commit_sha,
                    "conclusion": "success" if run.score >= 75 else "failure",
                    "output": {
                        "title": f"Score {run.score}/100: {run.decision}",
                        "summary": summary,
                    },
                },
            }
            yield {
                "id": run.id,
                "tenant_id": ctx.tenant_id,
                "pull_request_id": run.pull_request_id,
                "commit_sha": run.commit_sha,
                "tool": run.tool,
                "source_format": source_format,
                "received_at": run.received,
                "result_count": run.results,
                "passed_count": passed,
                "violation_count": run.violations,
                "suppressed_count": suppressed,
                "new_violation_count": run.new_violations,
                "resolved_violation_count": resolved,
                "score": run.score,
                "decision": run.decision,
                "response": _json(response),
            }

    _copy(ctx, "compliance_checkrun", run_rows())

    def message(rule_id: str, path: str, violated: bool) -> str:
        name = f"{path.rsplit('/', 1)[-1].split('.')[0]}.handler_{rng.randrange(400)}"
        if violated:
            detail = rng.choice(DETAILS)
            return rng.choice(VIOLATION_TEXT).format(id=rule_id, name=name, detail=detail)
        return rng.choice(PASS_TEXT).format(id=rule_id, name=name)

    def result_rows() -> Iterator[dict[str, Any]]:
        for run in ctx.runs:
            source_format, rules, tool_rules = TOOLS[run.tool]
            share = run.violations / run.results
            for _ in range(run.results):
                rule_id = rng.choice(rules)
                path = rng.choice(files)
                violated = rng.random() < share
                tool_rule = rng.choice(tool_rules)
                context = "{}"
                if source_format == "sarif":
                    level = "error" if violated else "note"
                    context = _json({"level": level, "kind": "fail" if violated else "pass"})
                elif source_format == "conftest":
                    query = f"data.{tool_rule}.deny"
                    kind = "failures" if violated else "successes"
                    context = _json({"conftest": kind, "metadata": {"query": query}})
                yield {
                    "tenant_id": ctx.tenant_id,
                    "run_id": run.id,
                    "rule_id": rule_id,
                    "status": "VIOLATION" if violated else "PASS",
                    "severity": tiers[rule_id],
                    "suppressed": violated and rng.random() < 0.03,
                    "file_path": path,
                    "line": None if path.endswith("json") else rng.randrange(1, 2400),
                    "message": message(rule_id, path, violated),
                    "fingerprint": _hex(rng, 40) if violated else "",
                    "tool_rule": tool_rule,
                    "context": context,
                    "created_at": run.received,
                }

    _copy(ctx, "compliance_checkresult", result_rows())

    runs_by_pr_tool: dict[int, dict[str, list[_Run]]] = {}
    for run in ctx.runs:
        runs_by_pr_tool.setdefault(run.pull_request_id, {}).setdefault(run.tool, []).append(run)
    violations_per_pr = _split(n_violations, n_prs, rng, minimum=0)

    def violation_rows() -> Iterator[dict[str, Any]]:
        for p, count in enumerate(violations_per_pr):
            by_tool = runs_by_pr_tool[pr_first + p]
            tools = list(by_tool)
            for _ in range(count):
                runs = by_tool[rng.choice(tools)]
                i = rng.randrange(max(1, len(runs) // 2))
                first, last = runs[i], runs[rng.randrange(i, len(runs))]
                rule_id = rng.choice(TOOLS[first.tool][1])
                path = rng.choice(files)
                roll = rng.random()
                status = "open" if roll < 0.55 else ("resolved" if roll < 0.95 else "suppressed")
                resolved_at = None
                if status == "resolved":
                    later = timedelta(minutes=rng.randrange(10, 2000))
                    resolved_at = min(ctx.now, last.received_at + later)
                yield {
                    "tenant_id": ctx.tenant_id,
                    "pull_request_id": pr_first + p,
                    "rule_id": rule_id,
                    "tool": first.tool,
                    "fingerprint": _hex(rng, 40),
                    "severity": tiers[rule_id],
                    "status": status,
                    "file_path": path,
                    "line": rng.randrange(1, 2400),
                    "message": message(rule_id, path, True),
                    "occurrences": rng.randint(1, len(runs)),
                    "first_seen_run_id": first.id,
                    "last_seen_run_id": last.id,
                    "first_seen_at": first.received,
                    "last_seen_at": last.received,
                    "resolved_at": resolved_at and resolved_at.isoformat(),
                    "resolved_by_commit": _hex(rng, 40) if resolved_at else "",
                }

    _copy(ctx, "compliance_violation", violation_rows())

    for run in ctx.runs:
        after = {
            "pull_request": run.pull_request,
            "commit_sha": run.commit_sha,
            "tool": run.tool,
            "results": run.results,
            "new_violations": run.new_violations,
            "resolved_violations": 0,
            "score": run.score,
            "decision": run.decision,
        }
        actor = ctx.token(rng, CI_TOKENS[run.pull_request_id % len(CI_TOKENS)])
        target = f"compliance.checkrun:{run.id}"
        ctx.event(run.received_at, "compliance.run_recorded", target, after, actor=actor)


# --- alerts, digests, deliveries, attempts -------------------------------------------------------


def _alert_source(ctx: _Ctx, rng: random.Random) -> dict[str, Any]:
    """What raised an alert: an SLO burning its budget, a silent service, new violations of a
    pull request, or a flag needing attention."""
    roll = rng.random()
    if roll < 0.45:
        slo_id, slo_name, s, _ = rng.choice(ctx.slos)
        service = ctx.services[s].name
        severity = rng.choice(("page", "page", "ticket"))
        factor = 14.4 if severity == "page" else 1.0
        burn = round(factor * rng.uniform(1.0, 3.0), 2)
        short = round(burn * rng.uniform(0.9, 1.3), 2)
        return {
            "source": "slo",
            "tier": 1 if severity == "page" else 2,
            "dedup_key": f"slo:{slo_id}:{severity}",
            "title": f"{slo_name}: error budget burning ({severity})",
            "summary": f"Burn rate {burn}x over 1h and {short}x over 5m (threshold {factor}x) "
            f"for {service}.",
            "details": {
                "slo": slo_name,
                "service": service,
                "severity": severity,
                "long_burn": burn,
                "long_window": "1h",
                "short_burn": short,
                "short_window": "5m",
                "factor": factor,
                "budget_remaining": round(rng.uniform(-0.3, 0.9), 4),
            },
            "links": [{"href": f"/admin/slo/slo/{slo_id}/change/", "text": "SLO"}],
        }
    if roll < 0.55:
        service = rng.choice(ctx.services)
        minutes = rng.randrange(15, 180)
        return {
            "source": "slo",
            "tier": 2,
            "dedup_key": f"slo-nodata:{service.id}",
            "title": f"{service.name}: no data for {minutes} minutes",
            "summary": f"No measurements from {service.name} for {minutes} minutes.",
            "details": {"service": service.name, "minutes": minutes},
            "links": [{"href": f"/admin/slo/service/{service.id}/change/", "text": "Service"}],
        }
    if roll < 0.9:
        run = rng.choice(ctx.runs)
        rule_id = rng.choice(TOOLS[run.tool][1])
        rule_tier, rule_name = ctx.rules[rule_id]
        new = rng.randrange(1, 6)
        repository, number = run.pull_request.split("#")
        return {
            "source": "compliance",
            "tier": {"BLOCK": 1, "OVERRIDE": 2, "WARNING": 3}[rule_tier],
            "dedup_key": f"compliance:{run.pull_request}:{rule_id}",
            "title": f"{rule_tier} {rule_id} in {run.pull_request}: {rule_name}"[:200],
            "summary": f"{new} new {rule_tier} violations of {rule_id} ({rule_name}) at "
            f"{run.commit_sha[:12]} by {run.tool}. Gate: {run.decision}.",
            "details": {
                "repository": repository,
                "pull_request": int(number),
                "rule": rule_id,
                "tool": run.tool,
                "commit_sha": run.commit_sha,
                "new": new,
            },
            "links": [{"href": f"https://github.com/{repository}/pull/{number}", "text": "PR"}],
        }
    state_id, f, e, _ = rng.choice(ctx.states)
    flag, environment = ctx.flags[f][1], ctx.environments[e][1]
    problem = rng.choice(("stale", "rollout halted", "killed"))
    return {
        "source": "flags",
        "tier": 2,
        "dedup_key": f"flags:{state_id}:{problem.replace(' ', '-')}",
        "title": f"{flag} in {environment}: {problem}",
        "summary": f"Flag {flag} needs attention in {environment}: {problem}.",
        "details": {"flag": flag, "environment": environment},
        "links": [{"href": f"/admin/flags/flagstate/{state_id}/change/", "text": "Flag state"}],
    }


def _alerts(
    ctx: _Ctx, n_alerts: int, n_digests: int, n_links: int, n_deliveries: int, n_attempts: int
) -> None:
    rng = ctx.rng("alerts")
    first_id = _reserve_ids(ctx, "alerts_alert", n_alerts)
    open_keys: set[str] = set()
    alerts = []
    for i, first_seen in enumerate(sorted(ctx.at(rng) for _ in range(n_alerts))):
        alert = _alert_source(ctx, rng)
        roll = rng.random()
        status = "resolved"
        if roll > 0.86 and ctx.now - first_seen < timedelta(days=3):
            status = "acknowledged" if roll < 0.93 else "firing"
            if alert["dedup_key"] in open_keys:  # one open alert per key
                status = "resolved"
            open_keys.add(alert["dedup_key"])
        duration = timedelta(minutes=rng.expovariate(1 / 90) + 2)
        last_seen = min(ctx.now, first_seen + duration * rng.random())
        notified = None
        if alert["tier"] < 3:
            delay = rng.randrange(1, 120) if alert["tier"] == 1 else rng.randrange(60, 3600)
            notified = min(ctx.now, first_seen + timedelta(seconds=delay))
        acknowledged = resolved = escalated = None
        acknowledged_by = resolved_by = ""
        if status != "firing" and rng.random() < 0.6:
            acknowledged = min(ctx.now, first_seen + timedelta(minutes=rng.randrange(1, 40)))
            acknowledged_by = rng.choice(ctx.users)[1]
        if status == "resolved":
            resolved = min(ctx.now, max(last_seen, first_seen + duration))
            resolved_by = "system" if rng.random() < 0.7 else rng.choice(ctx.users)[1]
        if alert["tier"] == 1 and acknowledged is None and rng.random() < 0.3:
            escalated = min(ctx.now, first_seen + timedelta(minutes=15))
        alerts.append(
            {
                "id": first_id + i,
                "tenant_id": ctx.tenant_id,
                **alert,
                "details": _json(alert["details"]),
                "links": _json(alert["links"]),
                "status": status,
                "notify_state": "notified" if notified else "waiting",
                "only_kinds": "[]",
                "count": 1 + int(rng.expovariate(1 / 3)),
                "first_seen_at": first_seen,
                "last_seen_at": last_seen,
                "first_notified_at": notified,
                "last_notified_at": max(notified, last_seen) if notified else None,
                "escalated_at": escalated,
                "acknowledged_at": acknowledged,
                "acknowledged_by": acknowledged_by,
                "resolved_at": resolved,
                "resolved_by": resolved_by,
                "version": 1 + sum(t is not None for t in (acknowledged, resolved, escalated)),
            }
        )
    _copy(ctx, "alerts_alert", _isoformat(alerts))
    _alert_events(ctx, rng, alerts)

    first_id = _reserve_ids(ctx, "alerts_digest", n_digests)
    hour = ctx.now.replace(minute=0, second=0, microsecond=0)
    digests = []
    for d in range(n_digests):
        at = hour - timedelta(hours=n_digests - d)
        count = rng.randrange(3, 40)
        figures = {"alerts": count, "new": rng.randrange(1, count + 1), "slo": count // 2}
        digests.append(
            {
                "id": first_id + d,
                "tenant_id": ctx.tenant_id,
                "tier": 2,
                "kind": "batch",
                "period_key": at.strftime("%Y-%m-%dT%H"),
                "figures": _json(figures),
                "created_at": at + timedelta(seconds=rng.randrange(1, 180)),
            }
        )
    _copy(ctx, "alerts_digest", _isoformat(digests))
    seen = [row["first_seen_at"] for row in alerts]

    def digest_links() -> Iterator[dict[str, Any]]:
        for digest, count in zip(digests, _split(n_links, n_digests, rng), strict=True):
            end = max(count, bisect_left(seen, digest["created_at"]))
            window = range(max(0, end - max(3 * count, 50)), min(end, len(alerts)))
            for a in rng.sample(window, min(count, len(window))):
                yield {"digest_id": digest["id"], "alert_id": alerts[a]["id"]}

    written = _copy(ctx, "alerts_digest_alerts", digest_links())
    n_attempts += n_links - written  # keeps the total if a window was short

    first_id = _reserve_ids(ctx, "alerts_delivery", n_deliveries)
    n_digest_deliveries = min(n_deliveries // 10, 3 * n_digests)
    per_alert = _split(n_deliveries - n_digest_deliveries, n_alerts, rng)
    tries_per_delivery = _tries(n_deliveries, n_attempts, rng)
    channels: dict[str, list[int]] = {}
    for channel_id, kind in ctx.channels:
        channels.setdefault(kind, []).append(channel_id)
    unique = ctx.unique_rng("idempotency")
    deliveries: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []

    def deliver(
        alert_id: int | None, digest_id: int | None, purpose: str, kind: str, at: datetime
    ) -> None:
        delivery_id = first_id + len(deliveries)
        tries = tries_per_delivery[len(deliveries)]
        requeued = (tries - 1) // MAX_ATTEMPTS
        dead = tries % MAX_ATTEMPTS == 0
        retrying = not dead and tries > 1 and ctx.now - at < timedelta(hours=2)
        started = at
        errors = []
        for number in range(1, tries + 1):
            ok = number == tries and not dead and not retrying
            code, error = (rng.choice((200, 202, 204)), "") if ok else rng.choice(HTTP_ERRORS)
            errors.append(error)
            outcome = "delivered" if ok else "failed"
            if not ok and rng.random() < 0.05:
                outcome, code, error = "breaker_open", None, "circuit open: not attempted"
            duration = 5000 if "timed out" in error else int(rng.lognormvariate(5, 0.6))
            attempts.append(
                {
                    "tenant_id": ctx.tenant_id,
                    "delivery_id": delivery_id,
                    "number": number,
                    "started_at": min(ctx.now, started),
                    "duration_ms": duration,
                    "outcome": outcome,
                    "status_code": code,
                    "error": error,
                }
            )
            started += timedelta(seconds=min(3600, 15 * 2**number) * rng.uniform(0.8, 1.2))
        status = "dead" if dead else ("retrying" if retrying else "delivered")
        done = min(ctx.now, attempts[-1]["started_at"] + timedelta(seconds=1))
        next_attempt = min(ctx.now + timedelta(minutes=5), started) if retrying else done
        last_error = "" if status == "delivered" else errors[-1]
        if status == "delivered" and tries > 1:
            last_error = errors[-2]  # what the retries overcame
        deliveries.append(
            {
                "id": delivery_id,
                "tenant_id": ctx.tenant_id,
                "channel_id": rng.choice(channels.get(kind) or [ctx.channels[0][0]]),
                "alert_id": alert_id,
                "digest_id": digest_id,
                "purpose": purpose,
                "idempotency_key": uuid.UUID(int=unique.getrandbits(128), version=4),
                "status": status,
                "attempts": tries,
                "next_attempt_at": next_attempt,
                "lease_until": None,
                "created_at": at,
                "queued_at": at,
                "delivered_at": done if status == "delivered" else None,
                "dead_at": done if dead else None,
                "last_error": last_error,
                "requeued_count": requeued,
            }
        )

    for alert, count in zip(alerts, per_alert, strict=True):
        kinds = KINDS_BY_TIER[alert["tier"]]
        steps = [("trigger", alert["first_seen_at"])]
        for purpose, column in (("acknowledge", "acknowledged_at"), ("escalation", "escalated_at")):
            if alert[column]:
                steps.append((purpose, alert[column]))
        if alert["resolved_at"]:
            steps.append(("resolve", alert["resolved_at"]))
        for k in range(count):
            purpose, at = steps[k] if k < len(steps) else ("repeat", alert["last_seen_at"])
            deliver(alert["id"], None, purpose, kinds[k % len(kinds)], at)
    for k in range(n_digest_deliveries):
        digest = digests[k % n_digests]
        kind = ("slack", "email", "webhook")[k // n_digests % 3]
        deliver(None, digest["id"], "digest", kind, digest["created_at"])
    _copy(ctx, "alerts_delivery", _isoformat(deliveries))
    _copy(ctx, "alerts_deliveryattempt", _isoformat(attempts))


def _tries(deliveries: int, attempts: int, rng: random.Random) -> list[int]:
    """Attempts per delivery, `attempts` in all: most succeed at once, some after retries, a
    few exhaust their attempts (dead letters), some of those requeued and tried again."""
    tries = rng.choices((1, 2, 3, 4, 5, 7, 10), (840, 100, 30, 10, 12, 4, 4), k=deliveries)
    missing = attempts - sum(tries)
    if -missing > sum(t - 1 for t in tries if t < MAX_ATTEMPTS):
        raise ValueError(f"{attempts} attempts are too few for {deliveries} deliveries")
    while missing:  # move single retries (never a dead letter's) until the sum is right
        i = rng.randrange(deliveries)
        if missing > 0 and tries[i] < MAX_ATTEMPTS - 1:
            tries[i] += 1
            missing -= 1
        elif missing < 0 and 1 < tries[i] < MAX_ATTEMPTS:
            tries[i] -= 1
            missing += 1
    return tries


def _alert_events(ctx: _Ctx, rng: random.Random, alerts: list[dict[str, Any]]) -> None:
    """Raised, repeated, escalated, acknowledged and resolved, with the audited fields."""
    users = {name: index for index, (_, name) in enumerate(ctx.users)}
    for alert in alerts:
        target = f"alerts.alert:{alert['id']}"
        state = {**_pick(alert, ALERT_FIELDS), "status": "firing", "escalated_at": None}
        state.update(acknowledged_by="", resolved_by="")
        ctx.event(alert["first_seen_at"], "alert.raised", target, state)
        span = (alert["last_seen_at"] - alert["first_seen_at"]) / alert["count"]
        for r in range(1, min(alert["count"], 12)):
            at = alert["first_seen_at"] + span * r
            ctx.event(at, "alert.repeated", target, state, before=state)
        changes: list[tuple[datetime, str, dict[str, Any], Actor]] = []
        if alert["escalated_at"]:
            after = {"escalated_at": alert["escalated_at"].isoformat()}
            changes.append((alert["escalated_at"], "alert.escalated", after, SYSTEM))
        if alert["acknowledged_at"]:
            by = alert["acknowledged_by"]
            after = {"status": "acknowledged", "acknowledged_by": by}
            changes.append(
                (alert["acknowledged_at"], "alert.acknowledged", after, ctx.user(rng, users[by]))
            )
        if alert["resolved_at"]:
            by = alert["resolved_by"]
            actor = ctx.user(rng, users[by]) if by in users else SYSTEM
            after = {"status": "resolved", "resolved_by": by}
            changes.append((alert["resolved_at"], "alert.resolved", after, actor))
        for at, action, change, actor in sorted(changes, key=operator.itemgetter(0)):
            after = {**state, **change}
            ctx.event(at, action, target, after, before=state, actor=actor)
            state = after


# --- SLO measurements ----------------------------------------------------------------------------


def _slo(
    ctx: _Ctx, n_minutes: int, n_route_hours: int, n_service_hours: int, n_points: int
) -> None:
    rng = ctx.rng("slo")
    routes = [(service, r) for service in ctx.services for r in range(len(service.routes))]
    minute_end = ctx.now.replace(second=0, microsecond=0)
    hour_end = ctx.now.replace(minute=0, second=0, microsecond=0)
    day_end = datetime.combine(ctx.now.date(), datetime.min.time(), UTC)

    def minute_rows() -> Iterator[dict[str, Any]]:
        minutes = math.ceil(n_minutes / len(routes))
        left = n_minutes
        for m in range(minutes, 0, -1):
            minute = minute_end - timedelta(minutes=m)
            stamp, shape = minute.isoformat(), DIURNAL[minute.hour]
            for service, r in routes[:left]:
                requests = max(1, round(service.rates[r] * shape * (0.8 + 0.4 * rng.random())))
                expected = requests * service.error_ratio * (30 if rng.random() < 0.002 else 1)
                errors = min(requests, int(expected) + (rng.random() < expected - int(expected)))
                counters = "{}"
                if service.business:
                    orders = requests // 3
                    depth = round(40 * rng.random(), 1)
                    counters = _json(
                        {"orders": orders, "orders_ok": orders - errors, "queue_depth": depth}
                    )
                samples = "[]"
                if errors:
                    k = rng.randrange(len(ERROR_MESSAGES))
                    sample = {"fingerprint": _error_fingerprint(k), "message": ERROR_MESSAGES[k]}
                    samples = _json([{**sample, "count": errors}])
                jitter = 1 + 0.04 * (rng.random() - 0.5)
                yield {
                    "tenant_id": ctx.tenant_id,
                    "service_id": service.id,
                    "route": service.routes[r],
                    "version": service.version,
                    "minute": stamp,
                    "requests": requests,
                    "errors": errors,
                    "buckets": _json(_buckets(requests, service.shapes[r], jitter)),
                    "counters": counters,
                    "error_samples": samples,
                }
            left -= len(routes)

    _copy(ctx, "slo_minutesample", minute_rows())

    def hour(service: _Service, rate: float, start: datetime, shares: Sequence[float]) -> dict:
        """An hour's rollup: sums, merged buckets, counters and the top error fingerprints."""
        requests = max(1, round(60 * rate * DIURNAL[start.hour] * rng.uniform(0.85, 1.15)))
        errors = min(requests, round(requests * service.error_ratio * rng.uniform(0.3, 2.5)))
        samples = []
        remaining = errors
        for k in rng.sample(range(len(ERROR_MESSAGES)), min(len(ERROR_MESSAGES), 1 + errors // 20)):
            if remaining <= 0:
                break
            count = max(1, remaining // 2)
            samples.append(
                {"fingerprint": _error_fingerprint(k), "message": ERROR_MESSAGES[k], "count": count}
            )
            remaining -= count
        at = (start + timedelta(minutes=59)).isoformat()
        counters = {}
        if service.business:
            depth = round(rng.uniform(0, 40), 1)
            counters = {
                "orders": {"sum": requests // 3, "n": 60, "last": rng.randrange(1, 50), "at": at},
                "queue_depth": {"sum": round(60 * depth, 1), "n": 60, "last": depth, "at": at},
            }
        return {
            "tenant_id": ctx.tenant_id,
            "hour": start.isoformat(),
            "requests": requests,
            "errors": errors,
            "buckets": _json(_buckets(requests, shares, rng.uniform(0.98, 1.02))),
            "counters": _json(counters),
            "error_samples": _json(samples),
        }

    def route_hours() -> Iterator[dict[str, Any]]:
        hours = math.ceil(n_route_hours / len(routes))
        for n in range(n_route_hours):
            service, r = routes[n % len(routes)]
            start = hour_end - timedelta(hours=hours - n // len(routes))
            row = hour(service, service.rates[r], start, service.shapes[r])
            yield {"service_id": service.id, "route": service.routes[r], **row}

    _copy(ctx, "slo_routehour", route_hours())

    def service_hours() -> Iterator[dict[str, Any]]:
        services = ctx.services
        hours = math.ceil(n_service_hours / len(services))
        for n in range(n_service_hours):
            service = services[n % len(services)]
            start = hour_end - timedelta(hours=hours - n // len(services))
            row = hour(service, sum(service.rates), start, service.shapes[0])
            yield {"service_id": service.id, **row}

    _copy(ctx, "slo_servicehour", service_hours())

    def points() -> Iterator[dict[str, Any]]:
        for (slo_id, _, s, sli_type), budget in zip(
            ctx.slos, _split(n_points, len(ctx.slos), rng), strict=True
        ):
            service = ctx.services[s]
            rate = sum(service.rates)
            bad_ratio = service.error_ratio * (1 if sli_type == "availability" else 4)
            days = min(DAYS + 1, budget)
            hours = min(24 * (DAYS + 1), budget - days)
            for resolution, count, step, last in (
                ("d", days, timedelta(days=1), day_end),
                ("h", hours, timedelta(hours=1), hour_end - timedelta(hours=1)),
                (
                    "m",
                    budget - days - hours,
                    timedelta(minutes=1),
                    minute_end - timedelta(minutes=1),
                ),
            ):
                minutes = step // timedelta(minutes=1)
                for i in range(count - 1, -1, -1):
                    start = last - step * i
                    shape = 1.0 if resolution == "d" else DIURNAL[start.hour]
                    total = float(round(rate * minutes * shape * rng.uniform(0.85, 1.15)))
                    bad = float(min(total, round(total * bad_ratio * rng.uniform(0.2, 2.0))))
                    yield {
                        "tenant_id": ctx.tenant_id,
                        "slo_id": slo_id,
                        "resolution": resolution,
                        "start": start.isoformat(),
                        "good": total - bad,
                        "total": total,
                    }

    _copy(ctx, "slo_slipoint", points())


# --- flags: evaluation counts and changes --------------------------------------------------------


def _flag_counts(ctx: _Ctx, n_counts: int) -> None:
    rng = ctx.rng("flag-counts")
    factors = {"development": 0.002, "staging": 0.02, "production": 1.0}
    combos = []
    for flag_id, _, variants in ctx.flags:
        popularity = rng.lognormvariate(8, 2)
        for env_id, env_key in ctx.environments:
            for variant in variants:
                mean = popularity * factors[env_key] * rng.uniform(0.2, 1.0)
                combos.append((env_id, flag_id, variant, mean))
    days = math.ceil(n_counts / len(combos))

    def rows() -> Iterator[dict[str, Any]]:
        for n in range(n_counts):
            env_id, flag_id, variant, mean = combos[n % len(combos)]
            ago = days - 1 - n // len(combos)
            day: date = ctx.now.date() - timedelta(days=ago)
            weekend = 0.7 if day.weekday() >= 5 else 1.0
            today = (ctx.now.hour + 1) / 24 if ago == 0 else 1.0
            yield {
                "tenant_id": ctx.tenant_id,
                "environment_id": env_id,
                "flag_id": flag_id,
                "variant": variant,
                "day": day.isoformat(),
                "count": max(1, round(mean * weekend * today * rng.uniform(0.7, 1.3))),
            }

    _copy(ctx, "flags_flagevaluationcount", rows())


def _flag_changes(ctx: _Ctx, n: int) -> None:
    """Audit events of flag work: states switched, retargeted, rolled out stage by stage by the
    release bot, killed."""
    rng = ctx.rng("flag-changes")
    current = {state_id: snapshot for state_id, _, _, snapshot in ctx.states}
    for at in sorted(ctx.at(rng) for _ in range(n)):
        state_id, f, _, _ = rng.choice(ctx.states)
        variants = ctx.flags[f][2]
        before = current[state_id]
        after = {**before, "version": before["version"] + 1, "killed_at": None}
        actor = ctx.user(rng)
        roll = rng.random()
        if roll < 0.35:
            action = "flag_state.updated"
            after["enabled"] = not before["enabled"]
        elif roll < 0.65:
            action = "flag_state.rollout_stage"
            weight = rng.choice((5, 25, 50, 100))
            split = [{"variant": variants[0], "weight": weight}]
            after["fallthrough"] = {
                "split": [*split, {"variant": variants[-1], "weight": 100 - weight}]
            }
            actor = ctx.token(rng, ROLLOUT_TOKEN)
        elif roll < 0.8:
            action = "flag_state.changed_by_request"
            after["rules"] = [{"segment": rng.choice(SEGMENTS)[0], "variant": variants[0]}]
        elif roll < 0.85:
            action = "flag.killed"
            after.update(enabled=False, killed_at=at.isoformat())
        else:
            action = "flag_state.updated"
            after["default_variant"] = rng.choice(variants)
        current[state_id] = after
        ctx.event(at, action, f"flags.flagstate:{state_id}", after, before=before, actor=actor)


# --- the audit trail -----------------------------------------------------------------------------


def _audit(ctx: _Ctx, n_events: int) -> None:
    """Append `n_events` hashed events, in time order, to the system chain and a new chain of
    the tenant; move the system chain's head and insert the tenant's."""
    rng = ctx.rng("audit")
    if len(ctx.events) < n_events:
        _flag_changes(ctx, n_events - len(ctx.events))
    events = ctx.events
    if len(events) > n_events:
        events = [events[i] for i in sorted(rng.sample(range(len(events)), n_events))]
    events.sort(key=operator.attrgetter("at"))
    ctx.cur.execute(
        "SELECT id, last_seq, last_hash FROM audit_auditchain WHERE key = 'system' FOR UPDATE"
    )
    system = ctx.cur.fetchone()
    if system is None:
        raise RuntimeError("no system audit chain: is the database migrated?")
    tenant_chain = f"tenant:{ctx.tenant_id}"
    heads = {"system": [system[1], system[2]], tenant_chain: [0, GENESIS_HASH]}

    def rows() -> Iterator[dict[str, Any]]:
        for event in events:
            chain = "system" if event.system else tenant_chain
            head = heads[chain]
            target_type, target_id = event.target.split(":")
            user_id, token_id, label, ip = event.actor
            fields = {
                "chain": chain,
                "seq": head[0] + 1,
                "tenant_id": None if event.system else ctx.tenant_id,
                "actor_user_id": user_id,
                "actor_token_id": token_id,
                "actor_label": label,
                "action": event.action,
                "target_type": target_type,
                "target_id": target_id,
                "before": event.before,
                "after": event.after,
                "request_id": _hex(rng, 32),
                "ip": ip,
                "created_at": event.at.isoformat(timespec="microseconds"),
            }
            prev_hash = head[1]
            head[0] = fields["seq"]
            head[1] = hashlib.sha256(prev_hash.encode() + _canonical(fields)).hexdigest()
            yield {
                **fields,
                "before": None if event.before is None else _json(event.before),
                "after": None if event.after is None else _json(event.after),
                "prev_hash": prev_hash,
                "hash": head[1],
            }

    _copy(ctx, "audit_auditevent", rows())
    ctx.cur.execute(
        "UPDATE audit_auditchain SET last_seq = %s, last_hash = %s WHERE id = %s",
        (*heads["system"], system[0]),
    )
    last_seq, last_hash = heads[tenant_chain]
    head = {"key": tenant_chain, "tenant_id": ctx.tenant_id, "last_seq": last_seq}
    _insert(ctx, "audit_auditchain", [{**head, "last_hash": last_hash}])


# --- entry points --------------------------------------------------------------------------------


def populate(
    conninfo: str, rows: int = 1_000_000, *, seed: int = 7, now: datetime | None = None
) -> dict[str, int]:
    """Fill the migrated portal database at `conninfo` (connecting as the table owner) with
    `rows` rows in the mix of the module docstring, in one transaction; ANALYZE them after.

    Returns the rows inserted per table, largest first; they add up to exactly `rows`. `now`
    (default: the start of the current UTC hour) ends the 30-day window; with it and `seed`
    fixed, a freshly migrated database gets the same data on every run.
    """
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS:,}: the configuration alone is ~1,500")
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    n = {table: max(1, round(rows * share)) for table, share in MIX.items()}
    collecting = gc.isenabled()
    gc.disable()  # a million short-lived rows and no cycles: collections would only cost time
    try:
        with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
            ctx = _Ctx(cur=cur, seed=seed, now=now, start=now - timedelta(days=DAYS))
            dropped = _drop_for_load(ctx, COPIED_TABLES)
            _tenant(ctx)
            _compliance_config(ctx)
            _slo_config(ctx)
            _alert_config(ctx)
            _flags_config(ctx)
            _compliance(
                ctx,
                n["compliance_pullrequest"],
                n["compliance_checkrun"],
                n["compliance_checkresult"],
                n["compliance_violation"],
            )
            _alerts(
                ctx,
                n["alerts_alert"],
                n["alerts_digest"],
                n["alerts_digest_alerts"],
                n["alerts_delivery"],
                n["alerts_deliveryattempt"],
            )
            _slo(
                ctx,
                n["slo_minutesample"],
                n["slo_routehour"],
                n["slo_servicehour"],
                n["slo_slipoint"],
            )
            _flag_counts(ctx, n["flags_flagevaluationcount"])
            _audit(ctx, rows - sum(ctx.counts.values()) - 1)  # 1: the tenant's chain head
            _restore_after_load(ctx, dropped)
            conn.commit()
    finally:
        if collecting:
            gc.enable()
    counts = dict(sorted(ctx.counts.items(), key=lambda item: -item[1]))
    _analyze(conninfo, list(counts))
    return counts


def _analyze(conninfo: str, tables: list[str], sessions: int = 2) -> None:
    """ANALYZE the tables, largest first, in `sessions` parallel sessions."""

    def work(share: list[str]) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for table in share:
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))

    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(work, [tables[i::sessions] for i in range(sessions)]))


def _run(command: list[str]) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        name = Path(command[0]).name
        raise RuntimeError(f"{name} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")


def bare_dump_restore_seconds(
    conninfo: str, target_dbname: str, *, bindir: str, jobs: int = 2, workdir: Path
) -> dict[str, float]:
    """Time a bare `pg_dump -Fc` of the database at `conninfo` to a file in `workdir`, then a
    `pg_restore --no-owner --no-acl -j jobs` of it into the new database `target_dbname`,
    created from template0 by the same role (restore_seconds includes the CREATE DATABASE).

    The target must not exist yet; it is dropped at the end, also on error, and the dump file
    is removed. Returns dump_seconds, restore_seconds, total_seconds and dump_bytes.
    """
    if target_dbname == conninfo_to_dict(conninfo).get("dbname"):
        raise ValueError("the target database must not be the source database")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    dump = workdir / f"{target_dbname}.bare.dump"
    target = sql.Identifier(target_dbname)
    started = time.perf_counter()
    try:
        _run([str(Path(bindir) / "pg_dump"), "-Fc", "-f", str(dump), "-d", conninfo])
        dumped = time.perf_counter()
        dump_bytes = dump.stat().st_size
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(target))
        try:
            restore = [str(Path(bindir) / "pg_restore"), "--no-owner", "--no-acl", "-j", str(jobs)]
            _run([*restore, "-d", make_conninfo(conninfo, dbname=target_dbname), str(dump)])
            restored = time.perf_counter()
        finally:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(target))
    finally:
        dump.unlink(missing_ok=True)
    return {
        "dump_seconds": round(dumped - started, 3),
        "restore_seconds": round(restored - dumped, 3),
        "total_seconds": round(restored - started, 3),
        "dump_bytes": dump_bytes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("conninfo", help="libpq URL of a migrated portal database, as its owner")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bare", metavar="TARGET_DB", help="then time a bare dump and restore")
    parser.add_argument("--bindir", default="/usr/lib/postgresql/15/bin")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = populate(args.conninfo, args.rows, seed=args.seed)
    elapsed = time.perf_counter() - started
    width = max(map(len, counts))
    for table, count in counts.items():
        print(f"{table:<{width}}  {count:>9,}  {count / args.rows:6.2%}")
    print(f"{'total':<{width}}  {sum(counts.values()):>9,}")
    print(f"populated in {elapsed:.1f} s")
    if args.bare:
        timing = bare_dump_restore_seconds(
            args.conninfo, args.bare, bindir=args.bindir, workdir=args.workdir
        )
        print(json.dumps(timing))


if __name__ == "__main__":
    sys.exit(main())
