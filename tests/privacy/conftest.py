"""Privacy fixtures: a second real PostgreSQL database holding a shop's customers and orders
(an external source), a real HTTP connector on 127.0.0.1 standing for a CRM, and a subject whose
personal data spans the portal, the shop database and the CRM."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from django.db import connection

from apps.privacy import consents, datamap
from apps.privacy.models import ExternalDatabase, ExternalTable, WebhookConnector

CONNECTOR_SECRET = "crm-signing-secret-0123456789"
INVOICE_HOLD = "Tax law: invoices are kept 10 years (legal obligation)"

# The subject's personal values, and the secret-looking strings hidden in their free text.
EMAIL = "ana.silva@example.com"
PERSONAL = {
    "full_name": "Ana Beatriz Silva",
    "phone": "+1 780 555 0142",
    "address": "4417 Whyte Avenue NW, Edmonton",
    "birthday": "1987-03-14",
    "crm_nickname": "anabsilva-crm",
    "crm_phone": "+1 780 555 0199",
    "order_address": "12 Jasper Avenue, Edmonton",
}
SECRETS = {
    "github_token": "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "card": "4111 1111 1111 1111",
    "db_password": "hunter2-very-secret",
}
INVOICE = "INV-2026-000731"


def _owner_conninfo(dbname: str) -> str:
    from apps.drills.targets import portal_target

    return portal_target().with_dbname(dbname)


@pytest.fixture(scope="session")
def _external_database(django_db_setup, django_db_blocker):
    if connection.vendor != "postgresql":
        pytest.skip("external PostgreSQL sources need PostgreSQL")
    # Named after the test database, so two suites on one server never share it.
    name = f"{connection.settings_dict['NAME']}_privacy_ext"[:63]
    with django_db_blocker.unblock():
        admin = _owner_conninfo(connection.settings_dict["NAME"])
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _owner_conninfo(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SHOP_SCHEMA = """
DROP TABLE IF EXISTS orders, customers;
CREATE TABLE customers (
    id serial PRIMARY KEY, email text NOT NULL, full_name text, phone text, address text,
    birthday date, notes text, api_key text, created_at timestamptz DEFAULT now(),
    ref uuid DEFAULT gen_random_uuid(), last_ip inet DEFAULT '10.0.0.7'
);
CREATE TABLE orders (
    id serial PRIMARY KEY, customer_email text NOT NULL, item text NOT NULL,
    shipping_address text, invoice_number text, placed_at timestamptz DEFAULT now()
);
"""


@pytest.fixture
def shop(_external_database):
    """The shop's database, empty: customers and orders."""
    with psycopg.connect(_external_database, autocommit=True) as conn:
        conn.execute(SHOP_SCHEMA)
    return _external_database


def seed_shop(conninfo: str, email: str = EMAIL, orders: int = 3) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (email, full_name, phone, address, birthday, notes, api_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s), ('bob@example.com', 'Bob Other', "
            "'+1 403 555 0100', '1 Other Street', '1990-01-01', 'regular', 'k-bob')",
            [
                email.upper(),  # emails match case-insensitively
                PERSONAL["full_name"],
                PERSONAL["phone"],
                PERSONAL["address"],
                PERSONAL["birthday"],
                f"Called about her account; pasted her token {SECRETS['github_token']} and "
                f"her card {SECRETS['card']} into the chat.",
                "sk_live_AbCdEfGhIjKlMnOpQrStUv",
            ],
        )
        for n in range(orders):
            conn.execute(
                "INSERT INTO orders (customer_email, item, shipping_address, invoice_number) "
                "VALUES (%s, %s, %s, %s)",
                [email, f"book {n}", PERSONAL["order_address"], f"{INVOICE}-{n}"],
            )
        conn.execute(
            "INSERT INTO orders (customer_email, item, shipping_address, invoice_number) "
            "VALUES ('bob@example.com', 'pen', '1 Other Street', 'INV-BOB-1')"
        )


CUSTOMER_COLUMNS = {
    "email": {"category": "contact", "strategy": "keyed_hash"},
    "full_name": {"category": "identity", "strategy": "replace", "replacement": "[erased]"},
    "phone": {"category": "contact", "strategy": "set_null"},
    "address": {"category": "contact", "strategy": "random_string"},
    "birthday": {"category": "identity", "strategy": "truncate_date"},
    "notes": {"category": "content", "strategy": "set_null"},
    "api_key": {"category": "secret", "strategy": "set_null"},
    "ref": {"category": "identity"},  # types JSON has none for: written as text
    "last_ip": {"category": "activity", "strategy": "set_null"},
}
ORDER_COLUMNS = {
    "customer_email": {"category": "contact", "strategy": "keyed_hash"},
    "item": {"category": "activity"},
    "shipping_address": {"category": "contact", "strategy": "set_null"},
    "invoice_number": {"category": "financial", "legal_hold": INVOICE_HOLD},
}


def declare_shop(tenant, conninfo: str) -> ExternalDatabase:
    database = datamap.save_database(ExternalDatabase(tenant=tenant, name="shop"), dsn=conninfo)
    datamap.save_table(
        ExternalTable(
            tenant=tenant,
            database=database,
            table="public.customers",
            subject_column="email",
            columns=CUSTOMER_COLUMNS,
        )
    )
    datamap.save_table(
        ExternalTable(
            tenant=tenant,
            database=database,
            table="orders",
            subject_column="customer_email",
            columns=ORDER_COLUMNS,
        )
    )
    return database


@dataclass
class CRM:
    """A connected system answering the portal's signed requests from its own records.
    `mode`: ok; down (503); defer (202, the answer comes later by callback)."""

    records: dict[str, list[dict]] = field(default_factory=dict)
    mode: str = "ok"
    calls: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/privacy"

    def answer(self, body: dict) -> dict:
        email = body["subject"]["email"]
        rows = self.records.get(email, [])
        action = body["action"]
        if action == "access":
            return {"rows": rows, "fields": {"nickname": "identity", "password_hash": "secret"}}
        if action == "preview":
            return {"rows": len(rows), "fields": {"nickname": {"strategy": "delete_row"}}}
        if action == "erase":
            return {"rows": len(self.records.pop(email, []))}
        if action == "rectify":
            for row in rows:
                row.update(body["changes"])
            return {"rows": len(rows)}
        return {}

    def handle(self, headers: dict, raw: bytes) -> tuple[int, dict]:
        stamp = headers.get("x-opsportal-timestamp", "")
        expected = hmac.new(
            CONNECTOR_SECRET.encode(), stamp.encode() + b"." + raw, hashlib.sha256
        ).hexdigest()
        if headers.get("x-opsportal-signature") != f"v1={expected}":
            self.bad_signatures += 1
            return 401, {"error": "bad signature"}
        body = json.loads(raw)
        with self.lock:
            self.calls.append({**body, "idempotency_key": headers.get("idempotency-key")})
            if self.mode == "down":
                return 503, {"error": "maintenance"}
            if self.mode == "defer":
                return 202, {"status": "accepted"}
            return 200, self.answer(body)


def start_crm() -> CRM:
    crm = CRM()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, payload = crm.handle({k.lower(): v for k, v in self.headers.items()}, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    crm.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    crm.server.daemon_threads = True
    threading.Thread(target=crm.server.serve_forever, daemon=True).start()
    return crm


@pytest.fixture
def crm(tenant):
    server = start_crm()
    server.records[EMAIL] = [
        {
            "nickname": PERSONAL["crm_nickname"],
            "phone": PERSONAL["crm_phone"],
            "comment": f"db url postgres://ana:{SECRETS['db_password']}@crm.internal/db",
            "password_hash": "pbkdf2_sha256$not-for-export",
        }
    ]
    datamap.save_connector(
        WebhookConnector(tenant=tenant, name="crm", url=server.url), secret=CONNECTOR_SECRET
    )
    yield server
    server.server.shutdown()


def record_portal_consent(tenant, subject: str = EMAIL) -> None:
    consents.record_consent(
        tenant,
        subject=subject,
        purpose="marketing-email",
        granted=True,
        policy_version="2026-01",
        source="signup form",
        given_at=datetime(2026, 1, 10, tzinfo=UTC),
    )
