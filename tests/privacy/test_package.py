"""An access package over three sources: every personal value is in it, no secret is, the
manifest's hashes match the files, the download link works (audited) and expires."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEvent
from apps.core.models import OutboxMessage
from apps.privacy import consents, services
from apps.privacy.models import Status
from apps.tenancy.models import Membership
from apps.tenancy.roles import Role

CARD = "4111 1111 1111 1111"
GITHUB_TOKEN = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def subject(tenant, settings, tmp_path):
    settings.EVIDENCE_DIR = tmp_path / "evidence"
    user = get_user_model().objects.create_user(
        "asilva",
        email="ana.silva@example.com",
        password="correct horse battery staple",
        first_name="Ana",
        last_name="Silva",
    )
    # A portal account is a source only for the tenant's own members.
    Membership.objects.create(tenant=tenant, user=user, role=Role.VIEWER)
    consents.record_consent(
        tenant,
        subject="ana.silva@example.com",
        purpose="marketing-email",
        granted=True,
        policy_version="2026-01",
        source="signup form",
        given_at=datetime(2026, 1, 10, tzinfo=UTC),
    )
    request = services.create_request(
        tenant,
        request_type="access",
        jurisdiction="gdpr",
        subject_email="ana.silva@example.com",
        notes=f"Please send everything. My card {CARD} and my token {GITHUB_TOKEN} leaked.",
    )
    for step in (Status.VERIFIED, Status.APPROVED):
        request = services.transition(request, step, note="checked")
    return request


def test_the_package_holds_every_personal_value_and_no_secret(subject):
    request = services.transition(subject, Status.IN_PROGRESS, note="go")
    assert OutboxMessage.objects.filter(task_name="privacy.build_package").exists()
    request = services.complete_with_package(request)  # what the worker runs

    assert request.status == Status.COMPLETED and request.evidence_id
    with zipfile.ZipFile(request.package_path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        everything = " ".join(archive.read(n).decode() for n in names)
        for source in manifest["sources"]:
            for name, digest in source["files"].items():
                assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert {s["source"]: s["rows"] for s in manifest["sources"]} == {
        "portal.api_replays": 0,
        "portal.user_accounts": 1,
        "privacy.consents": 1,
        "privacy.requests": 1,
    }
    for personal in ("Ana", "Silva", "asilva", "ana.silva@example.com", "marketing-email"):
        assert personal in everything
    assert CARD not in everything and GITHUB_TOKEN not in everything
    assert "pbkdf2" not in everything and "password" not in everything  # a secret field
    assert manifest["redactions"] == {"api_key": 1, "card_number": 1}
    with open(request.package_path, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == request.package_sha256


def test_the_download_link_works_without_login_is_audited_and_expires(
    subject, api, make_token, tenant, client, settings
):
    request = services.complete_with_package(
        services.transition(subject, Status.IN_PROGRESS, note="go")
    )
    officer = api(make_token(tenant, Role.PRIVACY_OFFICER))
    body = officer.get(f"/api/v1/privacy/requests/{request.pk}/package?inline=1").json()
    assert body["sha256"] == request.package_sha256
    assert body["files"]["privacy.consents.json"][0]["purpose"] == "marketing-email"
    path = body["download_url"].split("testserver", 1)[1]
    response = client.get(path)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "manifest.json" in archive.namelist()
    assert AuditEvent.objects.filter(action="privacy_package.downloaded").count() == 1

    assert client.get(path[:-3] + "xyz").status_code == 404
    settings.PRIVACY_DOWNLOAD_DAYS = -1
    assert client.get(path).status_code == 410


def test_no_package_before_processing_and_an_unknown_subject_gets_an_empty_one(
    tenant, api, make_token, settings, tmp_path
):
    settings.EVIDENCE_DIR = tmp_path / "evidence"
    officer = api(make_token(tenant, Role.PRIVACY_OFFICER))
    request = services.create_request(
        tenant, request_type="portability", subject_external_id="nobody-we-know"
    )
    assert officer.get(f"/api/v1/privacy/requests/{request.pk}/package").status_code == 409
    for step in (Status.VERIFIED, Status.APPROVED, Status.IN_PROGRESS):
        request = services.transition(request, step, note="ok")
    request = services.complete_with_package(request)
    assert request.status == Status.COMPLETED
    rows = {s["source"]: s["rows"] for s in request.package_manifest["sources"]}
    assert rows["portal.user_accounts"] == 0 and rows["privacy.consents"] == 0
    assert rows["privacy.requests"] == 1  # the request itself is personal data of the subject


def test_a_failing_package_leaves_the_request_failed_not_completed(subject, settings):
    settings.EVIDENCE_DIR = "/dev/null/evidence"
    request = services.transition(subject, Status.IN_PROGRESS, note="go")
    with pytest.raises(OSError):
        services.complete_with_package(request)
    request.refresh_from_db()
    assert request.status == Status.FAILED and "package failed" in request.last_note
    assert services.allowed_transitions(request) == ["in_progress", "canceled"]


def test_a_portal_account_outside_the_tenant_is_not_its_data(subject, other_tenant):
    from apps.privacy.identity import Identity
    from apps.privacy.sources import SOURCES

    accounts = SOURCES["portal.user_accounts"]
    who = Identity.of("ana.silva@example.com")
    assert accounts.queryset(subject.tenant, who).count() == 1
    assert accounts.queryset(other_tenant, who).count() == 0
