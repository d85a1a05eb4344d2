"""Webhook connectors against a real HTTP server on 127.0.0.1: signed requests, answers that come
later by callback (signature checked, replays refused), and what a connector's failure does."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

import pytest
from django.test import Client

from apps.core.models import OutboxMessage
from apps.privacy import services
from apps.privacy.models import ConnectorCall, Status
from tests.privacy.conftest import CONNECTOR_SECRET, EMAIL, PERSONAL


@pytest.fixture
def access(tenant, crm, settings, tmp_path):
    settings.EVIDENCE_DIR = tmp_path / "evidence"
    request = services.create_request(tenant, request_type="access", subject_email=EMAIL)
    for step in (Status.VERIFIED, Status.APPROVED, Status.IN_PROGRESS):
        request = services.transition(request, step, note="ok")
    return request


def _signed(body: bytes, *, secret: str = CONNECTOR_SECRET, age: int = 0) -> dict:
    stamp = str(int(time.time()) - age)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_OPSPORTAL_TIMESTAMP": stamp, "HTTP_X_OPSPORTAL_SIGNATURE": f"v1={digest}"}


def test_requests_to_a_connector_are_signed_with_an_idempotency_key(access, crm):
    request = services.complete_with_package(access)
    assert request.status == Status.COMPLETED
    call = crm.calls[0]
    assert crm.bad_signatures == 0  # the CRM verified the portal's signature
    assert call["action"] == "access" and call["subject"]["email"] == EMAIL
    assert call["idempotency_key"] == f"privacy-call-{ConnectorCall.objects.get().pk}"
    assert ConnectorCall.objects.get().result == {}  # personal data not kept after use


def test_a_late_answer_arrives_by_signed_callback_and_completes_the_package(access, crm):
    crm.mode = "defer"
    request = services.complete_with_package(access)
    assert request.status == Status.IN_PROGRESS  # waiting, not failed
    call = ConnectorCall.objects.get()
    assert call.status == ConnectorCall.PENDING
    path = urlsplit(crm.calls[0]["callback_url"]).path
    answer = json.dumps(
        {"call_id": call.pk, "rows": [{"nickname": PERSONAL["crm_nickname"]}]}
    ).encode()
    client = Client()

    forged = client.post(
        path, answer, content_type="application/json", **_signed(answer, secret="x" * 20)
    )
    stale = client.post(path, answer, content_type="application/json", **_signed(answer, age=3600))
    unknown = client.post(
        path[:-4] + "abcd", answer, content_type="application/json", **_signed(answer)
    )
    assert (forged.status_code, stale.status_code, unknown.status_code) == (401, 401, 404)
    assert ConnectorCall.objects.get().status == ConnectorCall.PENDING

    accepted = client.post(path, answer, content_type="application/json", **_signed(answer))
    assert accepted.status_code == 202
    assert OutboxMessage.objects.filter(task_name="privacy.build_package").count() == 2
    request = services.complete_with_package(request)  # what the queued task runs
    assert request.status == Status.COMPLETED
    assert {s["source"]: s["rows"] for s in request.package_manifest["sources"]}[
        "connector.crm"
    ] == 1
    late = json.dumps({"call_id": call.pk, "rows": [{"nickname": "again"}]}).encode()
    again = client.post(path, late, content_type="application/json", **_signed(late))
    assert again.status_code == 409  # the request is closed: nothing more is taken
    assert ConnectorCall.objects.get().result == {}  # and what it said was used, then forgotten


def test_a_connector_that_is_down_leaves_the_access_request_failed(access, crm):
    crm.mode = "down"
    with pytest.raises(Exception, match="HTTP 503"):
        services.complete_with_package(access)
    access.refresh_from_db()
    assert access.status == Status.FAILED and "connector.crm: HTTP 503" in access.last_note
    assert "maintenance" not in access.last_note  # what the connector said stays off the record
    call = ConnectorCall.objects.get()
    assert call.status == ConnectorCall.NEW and call.error == ""  # asked again on a retry
    assert not list(access.__class__.objects.filter(pk=access.pk).exclude(package_path=""))


def test_a_callback_faster_than_the_202_is_not_overwritten(access, crm, monkeypatch):
    """The connector answers by callback before the portal has read its 202."""
    import httpx

    from apps.privacy import connectors

    crm.mode = "defer"
    real_post = httpx.post

    def post_then_call_back(url, **kwargs):
        response = real_post(url, **kwargs)
        call = ConnectorCall.objects.get()
        body = json.dumps({"call_id": call.pk, "rows": [{"nickname": "fast"}]}).encode()
        ConnectorCall.objects.filter(pk=call.pk).update(status=ConnectorCall.PENDING)
        connectors.receive_callback(
            connectors.callback_token(call),
            body,
            {
                connectors.TIMESTAMP_HEADER: _signed(body)["HTTP_X_OPSPORTAL_TIMESTAMP"],
                connectors.SIGNATURE_HEADER: _signed(body)["HTTP_X_OPSPORTAL_SIGNATURE"],
            },
        )
        return response  # the 202, read after the callback landed

    monkeypatch.setattr(httpx, "post", post_then_call_back)
    request = services.complete_with_package(access)

    assert request.status == Status.COMPLETED
    rows = {s["source"]: s["rows"] for s in request.package_manifest["sources"]}
    assert rows["connector.crm"] == 1


def test_a_signed_answer_cannot_be_replayed_to_another_call(access, crm):
    crm.mode = "defer"
    services.complete_with_package(access)
    call = ConnectorCall.objects.get()
    path = urlsplit(crm.calls[0]["callback_url"]).path
    other = json.dumps({"call_id": call.pk + 1, "rows": []}).encode()
    response = Client().post(path, other, content_type="application/json", **_signed(other))
    assert response.status_code == 400 and ConnectorCall.objects.get().status == "pending"
    weird = Client().post(
        path,
        b"{}",
        content_type="application/json",
        HTTP_X_OPSPORTAL_TIMESTAMP="١٢٣",  # Arabic-Indic digits pass str.isdigit()
        HTTP_X_OPSPORTAL_SIGNATURE="v1=é",
    )
    assert weird.status_code == 401


def test_a_connector_s_secret_fields_are_never_kept(access, crm):
    crm.records["ana.silva@example.com"][0]["password_hash"] = "pbkdf2$kept?"
    crm.mode = "defer"
    services.complete_with_package(access)
    call = ConnectorCall.objects.get()
    path = urlsplit(crm.calls[0]["callback_url"]).path
    answer = json.dumps(
        {
            "call_id": call.pk,
            "rows": [{"nickname": "ana", "api_token": "tok-123"}],
            "fields": {"api_token": {"category": "secret"}},
        }
    ).encode()
    Client().post(path, answer, content_type="application/json", **_signed(answer))
    assert "tok-123" not in json.dumps(ConnectorCall.objects.get().result)
