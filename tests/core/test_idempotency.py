import threading

import pytest
from django.db import connection

from apps.audit.models import EvidenceArtifact
from apps.core.models import IdempotencyRecord
from apps.tenancy.roles import Role
from tests.conftest import AppRoleClient

BODY = {"kind": "release", "period": "2026-11-23", "content": {"build": 42}}


@pytest.mark.django_db
def test_replay_returns_the_first_response(tenant, make_token, api):
    client = api(make_token(tenant, Role.CI))
    first = client.post("/api/v1/audit/evidence", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    second = client.post("/api/v1/audit/evidence", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert second["Location"] == first["Location"]
    assert "Idempotent-Replayed" not in first
    assert EvidenceArtifact.objects.count() == 1


@pytest.mark.django_db
def test_same_key_with_another_body_gets_422_and_writes_nothing(tenant, make_token, api):
    client = api(make_token(tenant, Role.CI))
    client.post("/api/v1/audit/evidence", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    other = {**BODY, "period": "2026-11-24"}
    response = client.post(
        "/api/v1/audit/evidence", other, format="json", HTTP_IDEMPOTENCY_KEY="k2"
    )
    assert response.status_code == 422
    assert "different request body" in response.json()["detail"]
    assert EvidenceArtifact.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_per_tenant(tenant, other_tenant, make_token, api):
    api(make_token(tenant, Role.CI)).post(
        "/api/v1/audit/evidence", BODY, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    response = api(make_token(other_tenant, Role.CI)).post(
        "/api/v1/audit/evidence", BODY, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert EvidenceArtifact.objects.count() == 2


@pytest.mark.django_db
def test_failed_request_leaves_no_record_and_no_partial_write(tenant, make_token, api):
    client = api(make_token(tenant, Role.CI))
    bad = client.post(
        "/api/v1/audit/evidence",
        {"kind": "BAD KIND", "content": {}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k3",
    )
    assert bad.status_code == 400
    assert bad.json()["errors"]["kind"]
    assert IdempotencyRecord.objects.count() == 0 and EvidenceArtifact.objects.count() == 0
    good = client.post("/api/v1/audit/evidence", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k3")
    assert good.status_code == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_execute_once(tenant, make_token):
    token = make_token(tenant, Role.CI)
    start = threading.Barrier(4)
    responses = []

    def post():
        client = AppRoleClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        start.wait()
        try:
            responses.append(
                client.post(
                    "/api/v1/audit/evidence", BODY, format="json", HTTP_IDEMPOTENCY_KEY="race"
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(1 for r in responses if r.get("Idempotent-Replayed") == "true") == 3
    assert EvidenceArtifact.objects.count() == 1
