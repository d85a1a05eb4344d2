import hashlib

import pytest
from django.core.management import call_command

from apps.tenancy.models import ApiToken
from apps.tenancy.roles import Role

pytestmark = pytest.mark.django_db


def assert_problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail", "errors"}
    return body


def test_valid_token_identifies_tenant_and_role(tenant, make_token, api):
    response = api(make_token(tenant, Role.CI)).get("/api/v1/tenancy/me")
    assert response.status_code == 200
    assert response.json()["tenant"]["slug"] == "acme"
    assert response.json()["role"] == "ci"


def test_token_usage_is_recorded(tenant, make_token, api):
    plaintext = make_token(tenant, Role.VIEWER)
    api(plaintext).get("/api/v1/tenancy/me")
    assert ApiToken.objects.get(tenant=tenant).last_used_at is not None


def test_expired_token_gets_401(tenant, make_token, api):
    body = assert_problem(api(make_token(tenant, expired=True)).get("/api/v1/tenancy/me"), 401)
    assert "expired" in body["detail"]


def test_revoked_token_gets_401(tenant, make_token, api):
    body = assert_problem(api(make_token(tenant, revoked=True)).get("/api/v1/tenancy/me"), 401)
    assert "revoked" in body["detail"]


def test_wrong_secret_and_malformed_tokens_get_401(tenant, make_token, api):
    good = make_token(tenant)
    assert_problem(api(good[:-4] + "AAAA").get("/api/v1/tenancy/me"), 401)
    assert_problem(api("not-a-token").get("/api/v1/tenancy/me"), 401)


def test_missing_credentials_get_401_with_challenge(db, api):
    response = api().get("/api/v1/tenancy/me")
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_another_tenants_resource_is_404_not_403(tenant, other_tenant, make_token, api):
    from apps.audit.services import store_evidence

    foreign = store_evidence(
        tenant_id=other_tenant.pk, kind="report", period="2026-11", content={"x": 1}
    )
    response = api(make_token(tenant, Role.VIEWER)).get(f"/api/v1/audit/evidence/{foreign.pk}")
    assert_problem(response, 404)


def test_role_without_permission_gets_403(tenant, make_token, api):
    response = api(make_token(tenant, Role.VIEWER)).post(
        "/api/v1/audit/evidence", {"kind": "x", "period": "p", "content": {}}, format="json"
    )
    assert_problem(response, 403)


def test_only_a_hash_of_the_token_is_stored(tenant, capsys):
    call_command("create_api_token", "acme", "--name", "pipeline", "--role", "ci")
    plaintext = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(name="pipeline")
    secret = plaintext.split("_", 2)[2]
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in token.secret_hash and plaintext.startswith(f"ops_{token.prefix}_")


def test_revoke_command_revokes(tenant, make_token, api, capsys):
    plaintext = make_token(tenant, Role.CI)
    prefix = plaintext.split("_")[1]
    call_command("revoke_api_token", prefix)
    assert_problem(api(plaintext).get("/api/v1/tenancy/me"), 401)


def test_create_tenant_command_rejects_bad_time_zone(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Unknown time zone"):
        call_command("create_tenant", "x", "--time-zone", "Mars/Olympus")


@pytest.mark.postgres
def test_token_lookup_never_widens_the_scope_to_all_tenants(tenant, other_tenant, make_token, api):
    """One SECURITY DEFINER lookup finds the token; no statement of the request switches the
    connection to every tenant, and the request still sees only its own tenant."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_token(other_tenant, Role.CI)
    plaintext = make_token(tenant, Role.CI)
    with CaptureQueriesContext(connection) as queries:
        response = api(plaintext).get("/api/v1/tenancy/me")
    assert response.status_code == 200 and response.json()["tenant"]["slug"] == "acme"
    statements = [q["sql"] for q in queries.captured_queries]
    assert any("opsportal_api_token(" in sql for sql in statements)
    assert not [sql for sql in statements if "'opsportal.all_tenants', 'on'" in sql]
    assert not [sql for sql in statements if 'FROM "tenancy_apitoken"' in sql]


@pytest.mark.postgres
def test_token_lookup_function_is_executable_by_the_app_role_only(tenant, make_token):
    from django.conf import settings
    from django.db import connection

    make_token(tenant, Role.CI)
    prefix = ApiToken.objects.get().prefix
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT grantee FROM pg_proc, aclexplode(proacl) "
            "WHERE proname = 'opsportal_api_token' AND privilege_type = 'EXECUTE'"
        )
        grantees = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT oid FROM pg_roles WHERE rolname = %s", [settings.DATABASE_APP_ROLE])
        app_role = cursor.fetchone()[0]
        assert app_role in grantees and 0 not in grantees, "PUBLIC (oid 0) must not execute it"
        cursor.execute(f'SET ROLE "{settings.DATABASE_APP_ROLE}"')
        try:
            cursor.execute("SELECT tenant_id FROM opsportal_api_token(%s)", [prefix])
            found = cursor.fetchall()
            cursor.execute("SELECT count(*) FROM tenancy_apitoken")
            visible_without_scope = cursor.fetchone()[0]
        finally:
            cursor.execute("RESET ROLE")
    assert found == [(tenant.pk,)]
    assert visible_without_scope == 0, "the table itself stays behind row-level security"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_logins_keep_working_while_the_lookup_function_is_rolled_back(tenant, make_token, api):
    """Migrated backwards past tenancy 0003 with this code still running: the ORM fallback."""
    from importlib import import_module

    from django.db import connection

    migration = import_module("apps.tenancy.migrations.0003_api_token_lookup_function")
    plaintext = make_token(tenant, Role.CI)
    with connection.schema_editor() as editor:
        migration.drop_function(None, editor)
    try:
        response = api(plaintext).get("/api/v1/tenancy/me")
    finally:
        with connection.schema_editor() as editor:
            migration.create_function(None, editor)
        from apps.tenancy.rls import apply_row_level_security

        apply_row_level_security()
    assert response.status_code == 200 and response.json()["tenant"]["slug"] == "acme"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_every_migrate_takes_execute_on_the_lookup_back_from_public(tenant):
    """A restore with `pg_restore --no-acl` leaves the function executable by PUBLIC; the
    post-migrate hook (which runs after the runbook's `migrate`) takes that back."""
    from django.db import connection

    from apps.tenancy.rls import apply_row_level_security

    def public_can_execute() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_proc, aclexplode(proacl) a WHERE proname = "
                "'opsportal_api_token' AND a.grantee = 0 AND a.privilege_type = 'EXECUTE')"
            )
            return cursor.fetchone()[0]

    with connection.cursor() as cursor:
        cursor.execute("GRANT EXECUTE ON FUNCTION opsportal_api_token(text) TO PUBLIC")
    assert public_can_execute()
    apply_row_level_security()
    assert not public_can_execute()
