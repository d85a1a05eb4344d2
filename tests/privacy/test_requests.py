"""Requests through the API and the services: deadlines at receipt, duplicates, the enforced
lifecycle (409 listing what is allowed), identity codes (expiry, attempts), pausing, extension,
deadline reminders, roles and tenants."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.core.models import OutboxMessage
from apps.privacy import reminders, services, verification
from apps.privacy.models import PrivacyRequest, Status, VerificationCode
from apps.tenancy.roles import Role


@pytest.fixture
def officer(api, make_token, tenant):
    return api(make_token(tenant, Role.PRIVACY_OFFICER))


def _new(client, **body):
    payload = {"request_type": "access", "subject_email": "Ana@Example.com"}
    payload.update(body)
    return client.post("/api/v1/privacy/requests", payload, format="json")


def test_a_request_is_recorded_with_its_statutory_deadline(officer, tenant):
    response = _new(officer, jurisdiction="ccpa")
    assert response.status_code == 201, response.json()
    body = response.json()
    received = services.local_date(tenant, timezone.now())
    assert body["due_on"] == services.deadlines.due_date("ccpa", received).isoformat()
    assert body["acknowledge_by"] is not None and "1798.130" in body["statute"]
    assert body["subject"]["email"] == "ana@example.com" and body["status"] == "received"
    assert "verified" in body["allowed_transitions"]
    assert AuditEvent.objects.filter(action="privacy_request.received").count() == 1


def test_an_unknown_subject_is_still_a_request_but_one_without_identity_is_422(officer):
    assert _new(officer, subject_email="", subject_external_id="cust-1").status_code == 201
    refused = _new(officer, subject_email="", subject_external_id="")
    assert refused.status_code == 422 and "subject" in refused.json()["errors"]
    assert _new(officer, request_type="forget_me").status_code == 400


def test_a_repeat_of_a_verified_request_within_the_lookback_is_a_duplicate(officer):
    unverified = _new(officer).json()
    genuine = _new(officer, subject_email="ana@example.com").json()
    assert genuine["duplicate_of"] is None, "an unverified request cannot cancel the real one"
    officer.post(
        f"/api/v1/privacy/requests/{genuine['id']}/transition",
        {"to": "verified", "note": "video call"},
        format="json",
    )
    again = _new(officer, subject_email="ana@example.com").json()
    assert again["duplicate_of"] == genuine["id"] and again["status"] == "canceled"
    assert unverified["status"] == "received"
    other_type = _new(officer, request_type="erasure").json()
    assert other_type["duplicate_of"] is None


def test_requires_input_returns_only_where_it_came_from(officer, tenant):
    request = services.create_request(tenant, request_type="access", subject_email="x@y.zz")
    request = services.transition(request, Status.IDENTITY_PENDING, note="code sent")
    request = services.transition(request, Status.REQUIRES_INPUT, note="which account?")
    allowed = services.allowed_transitions(request)
    assert allowed == ["identity_pending", "rejected", "canceled", "paused"]
    for skipping in (Status.VERIFIED, Status.APPROVED, Status.IN_PROGRESS):
        with pytest.raises(services.InvalidTransition):
            services.transition(request, skipping, note="skip")
    request = services.transition(request, Status.IDENTITY_PENDING, note="answered")
    assert request.verified_at is None and request.input_from_status == ""


def test_a_stale_version_is_409_and_changes_nothing(officer, tenant):
    request = services.create_request(tenant, request_type="access", subject_email="x@y.zz")
    stale = officer.post(
        f"/api/v1/privacy/requests/{request.pk}/transition",
        {"to": "rejected", "note": "spam", "version": request.version + 1},
        format="json",
    )
    assert stale.status_code == 409 and "version" in stale.json()["errors"]
    assert PrivacyRequest.objects.get(pk=request.pk).status == "received"


def test_invalid_transitions_get_409_listing_the_allowed_ones(officer):
    request_id = _new(officer).json()["id"]
    response = officer.post(
        f"/api/v1/privacy/requests/{request_id}/transition", {"to": "completed"}, format="json"
    )
    assert response.status_code == 409
    allowed = response.json()["errors"]["allowed"]
    assert set(allowed) == {"identity_pending", "verified", "rejected", "canceled", "paused"}
    assert PrivacyRequest.objects.get(pk=request_id).status == "received"

    no_note = officer.post(
        f"/api/v1/privacy/requests/{request_id}/transition", {"to": "verified"}, format="json"
    )
    assert no_note.status_code == 422 and "note" in no_note.json()["errors"]
    for step in ("verified", "approved", "in_progress"):
        moved = officer.post(
            f"/api/v1/privacy/requests/{request_id}/transition",
            {"to": step, "note": "checked the account's verified email"},
            format="json",
        )
        assert moved.status_code == 200, moved.json()
    # Only the worker that built the package completes the request, with its evidence.
    by_hand = officer.post(
        f"/api/v1/privacy/requests/{request_id}/transition", {"to": "completed"}, format="json"
    )
    assert by_hand.status_code == 409 and by_hand.json()["errors"]["allowed"] == ["failed"]
    services.complete(PrivacyRequest.objects.get(pk=request_id), note="package sent")
    closed = officer.post(
        f"/api/v1/privacy/requests/{request_id}/transition", {"to": "canceled"}, format="json"
    )
    assert closed.status_code == 409 and closed.json()["errors"]["allowed"] == []


def test_a_one_time_code_verifies_and_expires_and_runs_out_of_attempts(officer, settings):
    request_id = _new(officer).json()["id"]
    url = f"/api/v1/privacy/requests/{request_id}/verification"
    sent = officer.post(url, {}, format="json")
    assert sent.status_code == 202 and sent.json()["status"] == "identity_pending"
    assert OutboxMessage.objects.filter(task_name="privacy.issue_code").exists()
    request = PrivacyRequest.objects.get(pk=request_id)
    verification.issue_code(request)  # what the worker runs
    code = mail.outbox[-1].body.split("code is ")[1].split(".")[0]
    assert len(code) == 6 and not VerificationCode.objects.filter(code_hash=code).exists()

    for left in range(settings.PRIVACY_CODE_MAX_ATTEMPTS - 1, -1, -1):
        wrong = officer.post(url, {"code": "000000" if code != "000000" else "111111"})
        assert wrong.status_code == 422 and f"{left} attempt(s) left" in str(wrong.json())
    exhausted = officer.post(url, {"code": code})
    assert exhausted.status_code == 422 and "Too many attempts" in str(exhausted.json())

    verification.issue_code(request)  # a new code replaces the used-up one
    code = mail.outbox[-1].body.split("code is ")[1].split(".")[0]
    later = timezone.now() + timedelta(minutes=settings.PRIVACY_CODE_TTL_MINUTES + 1)
    with pytest.raises(verification.VerificationFailed, match="expired"):
        verification.verify_code(request, code, now=later)
    verified = officer.post(url, {"code": code}).json()
    assert verified["status"] == "verified" and verified["verification_method"] == "email code"


def test_pausing_stops_the_clock_and_resuming_moves_the_due_date(tenant):
    received = timezone.make_aware(datetime(2026, 3, 10, 12, 0))
    request = services.create_request(
        tenant,
        request_type="access",
        jurisdiction="gdpr",
        subject_email="a@example.com",
        received_at=received,
    )
    assert request.due_on == date(2026, 4, 10)
    paused = services.transition(request, Status.PAUSED, note="waiting", now=received)
    assert services.allowed_transitions(paused) == ["received", "canceled"]
    resumed = services.transition(
        paused, Status.RECEIVED, note="answer in", now=received + timedelta(days=2, hours=1)
    )
    assert resumed.due_on == date(2026, 4, 13) and resumed.paused_seconds == 2 * 86400 + 3600


def test_one_extension_with_its_reason_and_notice(officer, tenant):
    request_id = _new(officer, jurisdiction="pipeda").json()["id"]
    url = f"/api/v1/privacy/requests/{request_id}/extend"
    today = services.local_date(tenant, timezone.now())  # the tenant's day, not UTC's
    tomorrow = officer.post(url, {"reason": "Told", "notice_on": today + timedelta(days=1)})
    assert tomorrow.status_code == 422 and "notice_on" in tomorrow.json()["errors"]
    body = officer.post(url, {"reason": "Records in an archive", "notice_on": today}).json()
    assert body["extended"] and body["extension"]["reason"] == "Records in an archive"
    again = officer.post(url, {"reason": "More", "notice_on": today})
    assert again.status_code == 422 and "already extended" in str(again.json())


def test_deadline_reminders_fire_once_each_and_resolve_on_completion(tenant):
    request = services.create_request(
        tenant, request_type="erasure", jurisdiction="ccpa", subject_email="b@example.com"
    )
    seven_before = request.due_on - timedelta(days=7)
    assert reminders.remind_deadlines(today=seven_before - timedelta(days=1)) == 0
    assert reminders.remind_deadlines(today=seven_before) == 1
    assert reminders.remind_deadlines(today=seven_before) == 0, "once"
    assert reminders.remind_deadlines(today=request.due_on + timedelta(days=1)) == 2
    keys = set(Alert.objects.values_list("dedup_key", flat=True))
    assert keys == {
        f"privacy:{request.pk}:due-in-7-days",
        f"privacy:{request.pk}:due-in-2-days",
        f"privacy:{request.pk}:overdue",
    }
    assert Alert.objects.get(dedup_key=f"privacy:{request.pk}:overdue").tier == 1
    services.transition(request, Status.REJECTED, note="not a California resident")
    assert not Alert.objects.filter(resolved_at__isnull=True).exists()


def test_only_privacy_officers_of_the_tenant_see_requests(
    api, make_token, tenant, other_tenant, officer
):
    request_id = _new(officer).json()["id"]
    operator = api(make_token(tenant, Role.OPERATOR))
    assert operator.get("/api/v1/privacy/requests").status_code == 403
    stranger = api(make_token(other_tenant, Role.PRIVACY_OFFICER))
    assert stranger.get(f"/api/v1/privacy/requests/{request_id}").status_code == 404
    assert stranger.get("/api/v1/privacy/requests").json()["results"] == []


def test_demo_and_tile(tenant, admin_client_for, settings, tmp_path):
    from apps.privacy.demo import load_demo
    from apps.privacy.models import ErasureRecord, RetentionRun, SubjectRestriction

    settings.EVIDENCE_DIR = tmp_path / "evidence"
    assert load_demo(tenant) == 7
    assert load_demo(tenant) == 0
    statuses = dict(PrivacyRequest.objects.values_list("request_type", "status").order_by())
    assert statuses["objection"] == "completed" and statuses["rectification"] == "paused"
    erased = PrivacyRequest.objects.get(request_type="erasure", status="completed")
    assert erased.subject_email == "" and erased.erased_at
    assert ErasureRecord.objects.filter(request=erased, status="retained").exists()  # consent
    assert SubjectRestriction.objects.filter(kind="objection").count() == 2
    run = RetentionRun.objects.get()
    assert run.report["policies"]["idempotency-keys"]["rows"] == 40
    page = admin_client_for(tenant).get("/admin/").content.decode()
    tile = page[page.index(">Privacy requests<") :]
    assert "overdue" in tile and "not installed yet" not in tile
    assert "active restrictions" in tile and "40 rows (completed)" in tile
    listing = admin_client_for(tenant).get("/admin/privacy/privacyrequest/").content.decode()
    assert "days overdue" in listing and "ana.silva@example.com" in listing
