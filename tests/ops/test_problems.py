"""Every error path answers with a problem document and the right status."""

import pytest
from django.test import Client, override_settings

from apps.tenancy.roles import Role

pytestmark = pytest.mark.django_db


def assert_problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    assert "detail" in body and "errors" in body
    return body


def test_unknown_api_url_is_404():
    assert_problem(Client().get("/api/v1/nothing-here"), 404)


def test_wrong_method_is_405_with_allow(tenant, make_token, api):
    response = api(make_token(tenant)).delete("/api/v1/tenancy/me")
    assert_problem(response, 405)
    assert "GET" in response["Allow"]


def test_wrong_method_outside_drf_is_405():
    response = Client().post("/healthz")
    assert_problem(response, 405)


def test_oversized_body_is_413():
    with override_settings(REQUEST_BODY_LIMIT_BYTES=100):
        response = Client().post(
            "/api/v1/audit/evidence", data="x" * 500, content_type="application/json"
        )
    assert_problem(response, 413)


def test_unsupported_media_type_is_415(tenant, make_token, api):
    response = api(make_token(tenant, Role.CI)).post(
        "/api/v1/audit/evidence", data="<xml/>", content_type="application/xml"
    )
    assert_problem(response, 415)


def test_malformed_json_is_400(tenant, make_token, api):
    response = api(make_token(tenant, Role.CI)).post(
        "/api/v1/audit/evidence", data="{not json", content_type="application/json"
    )
    assert_problem(response, 400)


def test_validation_errors_list_the_fields(tenant, make_token, api):
    response = api(make_token(tenant, Role.CI)).post(
        "/api/v1/audit/evidence", {"kind": "ok"}, format="json"
    )
    body = assert_problem(response, 400)
    assert "content" in body["errors"]


def test_throttled_requests_get_429_with_retry_after(tenant, make_token, api, settings):
    from django.core.cache import cache

    cache.clear()
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "principal": "2/min"}
    from opsportal.api.throttling import PrincipalRateThrottle

    original = PrincipalRateThrottle.THROTTLE_RATES
    PrincipalRateThrottle.THROTTLE_RATES = rates
    try:
        client = api(make_token(tenant))
        statuses = [client.get("/api/v1/tenancy/me").status_code for _ in range(3)]
        third = client.get("/api/v1/tenancy/me")
    finally:
        PrincipalRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert statuses[:2] == [200, 200]
    assert_problem(third, 429)
    assert int(third["Retry-After"]) > 0


def test_stale_version_is_409_and_changes_nothing(tenant, make_token, api):
    client = api(make_token(tenant, Role.TENANT_ADMIN))
    response = client.patch("/api/v1/tenancy/tenant", {"name": "New", "version": 7}, format="json")
    body = assert_problem(response, 409)
    assert "current version is 1" in body["detail"]
    tenant.refresh_from_db()
    assert tenant.name == "Acme"


def test_stale_if_match_is_412_and_current_etag_succeeds(tenant, make_token, api):
    client = api(make_token(tenant, Role.TENANT_ADMIN))
    etag = client.get("/api/v1/tenancy/tenant")["ETag"]
    ok = client.patch(
        "/api/v1/tenancy/tenant", {"name": "Renamed"}, format="json", HTTP_IF_MATCH=etag
    )
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = client.patch(
        "/api/v1/tenancy/tenant", {"name": "Again"}, format="json", HTTP_IF_MATCH=etag
    )
    assert_problem(stale, 412)


def test_bad_time_zone_is_400_without_partial_write(tenant, make_token, api):
    client = api(make_token(tenant, Role.TENANT_ADMIN))
    response = client.patch(
        "/api/v1/tenancy/tenant",
        {"name": "X", "time_zone": "Nowhere/City", "version": 1},
        format="json",
    )
    assert_problem(response, 400)
    tenant.refresh_from_db()
    assert tenant.name == "Acme" and tenant.version == 1


def test_unhandled_error_is_500_problem(tenant, make_token, api, monkeypatch):
    from apps.tenancy import api as tenancy_api

    def explode(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(tenancy_api.WhoAmIView, "get", explode)
    client = api(make_token(tenant))
    client.raise_request_exception = False
    body = assert_problem(client.get("/api/v1/tenancy/me"), 500)
    assert "boom" not in body["detail"]


def test_update_without_version_or_if_match_is_428(tenant, make_token, api):
    client = api(make_token(tenant, Role.TENANT_ADMIN))
    response = client.patch("/api/v1/tenancy/tenant", {"name": "Blind"}, format="json")
    assert_problem(response, 428)
    tenant.refresh_from_db()
    assert tenant.name == "Acme"


def test_dependency_down_is_503_with_retry_after(tenant, make_token, api, monkeypatch):
    from apps.tenancy import api as tenancy_api
    from opsportal.api.problems import ServiceUnavailable

    def unavailable(self, request):
        raise ServiceUnavailable("The broker is down.")

    monkeypatch.setattr(tenancy_api.WhoAmIView, "get", unavailable)
    response = api(make_token(tenant)).get("/api/v1/tenancy/me")
    assert_problem(response, 503)
    assert int(response["Retry-After"]) > 0
