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
    answer = json.dumps({"rows": [{"nickname": PERSONAL["crm_nickname"]}]}).encode()
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
    again = client.post(
        path, b'{"rows": []}', content_type="application/json", **_signed(b'{"rows": []}')
    )
    assert again.status_code == 202  # a retried callback: the first answer stands


def test_a_connector_that_is_down_leaves_the_access_request_failed(access, crm):
    crm.mode = "down"
    with pytest.raises(Exception, match="HTTP 503"):
        services.complete_with_package(access)
    access.refresh_from_db()
    assert access.status == Status.FAILED and "connector.crm" in access.last_note
    assert ConnectorCall.objects.get().status == ConnectorCall.FAILED
    assert not list(access.__class__.objects.filter(pk=access.pk).exclude(package_path=""))
