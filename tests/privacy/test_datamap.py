"""Declaring the data map: a malformed DSN, an unknown masking strategy or a column the live table
lacks gets 422 naming the field and saves nothing; DSNs and secrets never come back."""

from __future__ import annotations

import pytest

from apps.privacy.models import ExternalDatabase, ExternalTable, WebhookConnector
from apps.tenancy.roles import Role
from tests.privacy.conftest import CONNECTOR_SECRET, CUSTOMER_COLUMNS, declare_shop


@pytest.fixture
def officer(api, make_token, tenant):
    return api(make_token(tenant, Role.PRIVACY_OFFICER))


@pytest.fixture
def admin(api, make_token, tenant):
    return api(make_token(tenant, Role.TENANT_ADMIN))


def test_a_malformed_dsn_is_422_and_nothing_is_saved(admin):
    for dsn, expected in (
        ("mysql://root@db/shop", "Only postgresql://"),
        ("host=db port=fifty dbname=shop", "not a number"),
        ("postgresql://user@/", "must name host and dbname"),
        ("definitely not a dsn = =", "Not a valid PostgreSQL DSN"),
        ("host=db dbname=shop passfile=/root/.pgpass", "not accepted: passfile"),
        ("host=db dbname=shop options='-c role=x'", "not accepted: options"),
        ("host=/var/run/postgresql dbname=shop", "not a socket"),
        ("postgresql://shop@127.0.0.1:1/shop", "cannot connect"),
    ):
        response = admin.post(
            "/api/v1/privacy/sources/databases", {"name": "shop", "dsn": dsn}, format="json"
        )
        assert response.status_code == 422, dsn
        assert expected in response.json()["errors"]["dsn"][0], (dsn, response.json())
    assert not ExternalDatabase.objects.exists()


@pytest.mark.postgres
def test_a_dsn_is_checked_stored_encrypted_and_shown_without_its_password(admin, officer, shop):
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dsn = make_conninfo(**{**conninfo_to_dict(shop), "password": "pa55-word"})
    assert (
        officer.post(  # declaring a DSN is for tenant admins
            "/api/v1/privacy/sources/databases", {"name": "shop", "dsn": dsn}, format="json"
        ).status_code
        == 403
    )
    response = admin.post(
        "/api/v1/privacy/sources/databases", {"name": "shop", "dsn": dsn}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["dsn_hint"].startswith("postgresql://opsportal_owner@127.0.0.1")
    stored = ExternalDatabase.objects.get()
    assert "pa55-word" not in stored.dsn_ciphertext and "pa55-word" not in str(response.json())


@pytest.mark.postgres
def test_the_portal_s_own_database_is_never_an_external_source(admin):
    from django.db import connection

    from apps.drills.targets import portal_target

    own = portal_target().with_dbname(connection.settings_dict["NAME"])
    response = admin.post(
        "/api/v1/privacy/sources/databases", {"name": "me", "dsn": own}, format="json"
    )
    assert response.status_code == 422
    assert "portal's own database" in response.json()["errors"]["dsn"][0]
    assert not ExternalDatabase.objects.exists()


@pytest.mark.postgres
def test_tables_are_checked_against_the_live_table(officer, tenant, shop):
    declare_shop(tenant, shop)
    post = lambda **body: officer.post(  # noqa: E731
        "/api/v1/privacy/sources/tables",
        {"database": "shop", "subject_column": "email", **body},
        format="json",
    )
    unknown = post(table="customers_v2", columns={"email": {"category": "contact"}})
    assert (
        unknown.status_code == 422
        and "No table public.customers_v2" in unknown.json()["errors"]["table"][0]
    )
    strategy = post(
        table="public.orders", columns={"item": {"category": "activity", "strategy": "shred"}}
    )
    assert "Unknown masking strategy 'shred'" in strategy.json()["errors"]["columns.item"][0]
    types = post(
        table="public.customers",
        subject_column="email",
        columns={"birthday": {"category": "identity", "strategy": "keyed_hash"}},
    )
    assert types.status_code == 422
    assert "keyed_hash needs a text column" in types.json()["errors"]["columns.birthday"][0]
    missing = post(table="public.orders", columns={"colour": {"category": "content"}})
    assert "No column colour" in missing.json()["errors"]["columns.colour"][0]
    kept = post(
        table="public.customers",
        columns={"email": {"category": "contact"}, "phone": {"category": "contact"}},
    )
    assert "must be masked" in kept.json()["errors"]["columns.email"][0]
    undeclared = post(table="public.customers", columns={"phone": {"category": "contact"}})
    assert "Declare email in columns" in undeclared.json()["errors"]["subject_column"][0]
    not_unique = post(
        table="public.customers",
        key_column="full_name",
        columns={"email": {"category": "contact", "strategy": "keyed_hash"}},
    )
    assert "is not unique" in not_unique.json()["errors"]["key_column"][0]
    assert ExternalTable.objects.count() == 2  # only the two that declare_shop made


@pytest.mark.postgres
def test_the_data_map_lists_every_source_without_secrets(officer, tenant, shop):
    declare_shop(tenant, shop)
    officer.post(
        "/api/v1/privacy/sources/connectors",
        {"name": "crm", "url": "https://crm.example.com/privacy", "secret": CONNECTOR_SECRET},
        format="json",
    )
    body = officer.get("/api/v1/privacy/sources").json()
    sources = {s["name"]: s for s in body["sources"]}
    assert {
        "portal.user_accounts",
        "privacy.consents",
        "privacy.requests",
        "portal.api_replays",
        "external.shop.public.customers",
        "external.shop.public.orders",
        "connector.crm",
    } <= set(sources)
    customers = sources["external.shop.public.customers"]
    assert customers["fields"]["email"]["strategy"] == CUSTOMER_COLUMNS["email"]["strategy"]
    assert customers["database"].startswith("postgresql://opsportal_owner@")
    assert sources["privacy.requests"]["erased_last"] is True
    assert sources["connector.crm"]["replayable"] is False
    assert CONNECTOR_SECRET not in str(body)
    assert CONNECTOR_SECRET not in WebhookConnector.objects.get().secret_ciphertext


def test_connectors_need_a_safe_url_and_a_real_secret(officer):
    def post(**body):
        payload = {"name": "crm", "url": "https://crm.example.com/x", "secret": CONNECTOR_SECRET}
        return officer.post(
            "/api/v1/privacy/sources/connectors", {**payload, **body}, format="json"
        )

    assert post(url="http://169.254.169.254/latest").status_code == 422  # cloud metadata
    assert post(url="ftp://crm.example.com").status_code == 422
    assert post(secret="short").status_code == 400
    assert not WebhookConnector.objects.exists()
    assert post().status_code == 201
    assert post().status_code == 422  # the name is taken


def test_other_roles_cannot_touch_the_data_map(api, make_token, tenant):
    operator = api(make_token(tenant, Role.OPERATOR))
    assert operator.get("/api/v1/privacy/sources").status_code == 403
    response = operator.post(
        "/api/v1/privacy/sources/databases", {"name": "x", "dsn": "host=a dbname=b"}, format="json"
    )
    assert response.status_code == 403
