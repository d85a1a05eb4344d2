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
