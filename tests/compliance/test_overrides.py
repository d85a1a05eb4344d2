"""Overrides: four eyes, the gate changing at once on approval and expiry, later runs of the
same pull request, validation, throttling, and the audit trail of every transition."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.compliance.models import PullRequest, Violation
from apps.overrides import services
from apps.overrides.models import Override, OverrideState
from apps.tenancy.roles import Role
from opsportal.context import Actor
from tests.compliance.conftest import native, passed, violation

pytestmark = pytest.mark.django_db

REASON = "The key is the public AWS example key from the documentation."


@pytest.fixture
def blocked(post_run):
    body = post_run(native(results=[violation("R01", message="AWS key"), passed("R02")])).json()
    assert body["decision"] == "BLOCKED"
    return Violation.objects.get(rule_id="R01")


@pytest.fixture
def developer(tenant, make_token, api):
    return api(make_token(tenant, Role.VIEWER))


@pytest.fixture
def approver(tenant, make_token, api):
    return api(make_token(tenant, Role.COMPLIANCE_ADMIN))


def _gate(client):
    return client.get("/api/v1/compliance/gate?repository=acme/web&pr=1").json()


def _request(client, violation_id, **extra):
    return client.post(
        "/api/v1/overrides",
        {"violation": violation_id, "reason": REASON, **extra},
        format="json",
    )


def test_approval_by_a_compliance_admin_turns_blocked_into_override_approved(
    blocked, developer, approver
):
    requested = _request(developer, blocked.pk, expires_in_days=7)
    assert requested.status_code == 201, requested.content
    override = requested.json()
    assert override["state"] == "PENDING" and override["requested_days"] == 7
    assert _gate(developer)["decision"] == "BLOCKED", "a pending override changes nothing"
    approved = approver.post(f"/api/v1/overrides/{override['id']}/approve", {}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["state"] == "APPROVED"
    gate = _gate(developer)
    assert (gate["decision"], gate["can_merge"]) == ("OVERRIDE_APPROVED", True)
    assert gate["counts"]["overridden"]["BLOCK"] == 1
    assert gate["check_run"]["conclusion"] == "success"
    assert PullRequest.objects.get().decision == "OVERRIDE_APPROVED", "stored at once too"
    expires = Override.objects.get().expires_at
    assert timedelta(days=6, hours=23) < expires - timezone.now() <= timedelta(days=7)


def test_the_requester_can_never_approve_their_own_override(blocked, tenant, make_token, api):
    admin = api(make_token(tenant, Role.TENANT_ADMIN))
    override = _request(admin, blocked.pk).json()
    response = admin.post(f"/api/v1/overrides/{override['id']}/approve", {}, format="json")
    assert response.status_code == 403
    assert "four eyes" in response.json()["detail"]
    assert Override.objects.get().state == OverrideState.PENDING


def test_only_compliance_or_tenant_admins_decide(blocked, developer, tenant, make_token, api):
    override = _request(developer, blocked.pk).json()
    for role in (Role.VIEWER, Role.CI, Role.OPERATOR):
        client = api(make_token(tenant, role))
        response = client.post(f"/api/v1/overrides/{override['id']}/approve", {}, format="json")
        assert response.status_code == 403, role


def test_an_approved_override_covers_the_fingerprint_in_later_runs_of_the_pr(
    blocked, developer, approver, post_run
):
    override = _request(developer, blocked.pk).json()
    approver.post(f"/api/v1/overrides/{override['id']}/approve", {}, format="json")
    later = post_run(
        native(sha="b" * 40, results=[violation("R01", line=99, message="AWS key")])
    ).json()
    assert later["decision"] == "OVERRIDE_APPROVED"
    other_pr = post_run(native(pr=2, results=[violation("R01", message="AWS key")])).json()
    assert other_pr["decision"] == "BLOCKED", "an override belongs to one pull request"


def test_expiry_blocks_again_at_once_and_the_beat_job_records_it(blocked, developer):
    override = _request(developer, blocked.pk, expires_in_days=1).json()
    # Approved a day ago, less two seconds: it expires two seconds from now.
    approved_at = timezone.now() - timedelta(days=1) + timedelta(seconds=2)
    services.approve_override(
        Override.objects.get(pk=override["id"]), actor=Actor(label="approver"), now=approved_at
    )
    assert _gate(developer)["decision"] == "OVERRIDE_APPROVED"
    time.sleep(2.2)
    assert _gate(developer)["decision"] == "BLOCKED", "no job needed: the expiry counts at once"
    assert services.expire_overrides() == 1
    expired = Override.objects.get()
    assert expired.state == OverrideState.EXPIRED and expired.ended_at is not None
    assert PullRequest.objects.get().decision == "BLOCKED"


def test_the_gate_body_is_cached_per_pull_request_version(blocked, developer, approver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = _gate(developer)
    with CaptureQueriesContext(connection) as cold:
        _gate(developer)
    override = _request(developer, blocked.pk).json()
    approver.post(f"/api/v1/overrides/{override['id']}/approve", {}, format="json")
    after = _gate(developer)
    assert (first["decision"], after["decision"]) == ("BLOCKED", "OVERRIDE_APPROVED")
    assert not any("compliance_violation" in q["sql"] for q in cold.captured_queries)


def test_revoking_an_approval_blocks_again(blocked, developer, approver):
    override = _request(developer, blocked.pk).json()
    approver.post(f"/api/v1/overrides/{override['id']}/approve", {}, format="json")
    response = approver.post(f"/api/v1/overrides/{override['id']}/revoke", {}, format="json")
    assert response.json()["state"] == "REVOKED"
    assert _gate(developer)["decision"] == "BLOCKED"


def test_rejection_needs_a_reason_and_ends_the_request(blocked, developer, approver):
    override = _request(developer, blocked.pk).json()
    url = f"/api/v1/overrides/{override['id']}/reject"
    assert approver.post(url, {}, format="json").status_code == 400
    rejected = approver.post(url, {"reason": "Rotate the key instead."}, format="json")
    assert rejected.json()["state"] == "REJECTED"
    again = approver.post(f"/api/v1/overrides/{override['id']}/approve", {}, format="json")
    assert again.status_code == 409
    assert "REJECTED" in again.json()["detail"]


def test_bad_requests_are_refused_with_the_field_named(blocked, developer):
    short = developer.post(
        "/api/v1/overrides", {"violation": blocked.pk, "reason": "because"}, format="json"
    )
    assert short.status_code == 400 and "reason" in short.json()["errors"]
    too_long = _request(developer, blocked.pk, expires_in_days=91)
    assert too_long.status_code == 400 and "expires_in_days" in too_long.json()["errors"]
    neither = developer.post("/api/v1/overrides", {"reason": REASON}, format="json")
    assert neither.status_code == 400
    assert Override.objects.count() == 0


def test_a_violation_is_found_by_repository_pr_and_fingerprint(blocked, developer):
    response = developer.post(
        "/api/v1/overrides",
        {"repository": "acme/web", "pr": 1, "fingerprint": blocked.fingerprint, "reason": REASON},
        format="json",
    )
    assert response.status_code == 201
    assert Override.objects.get().violation_id == blocked.pk


def test_a_second_live_override_for_the_same_violation_conflicts(blocked, developer):
    assert _request(developer, blocked.pk).status_code == 201
    assert _request(developer, blocked.pk).status_code == 409


def test_another_tenants_violation_is_not_found(blocked, other_tenant, make_token, api):
    stranger = api(make_token(other_tenant, Role.TENANT_ADMIN))
    assert _request(stranger, blocked.pk).status_code == 404
    override = services.request_override(blocked, REASON)
    response = stranger.post(f"/api/v1/overrides/{override.pk}/approve", {}, format="json")
    assert response.status_code == 404


def test_requests_are_throttled_to_ten_per_hour_per_user(blocked, developer):
    cache.clear()
    codes = []
    for _ in range(11):
        response = developer.post(
            "/api/v1/overrides", {"violation": 999999, "reason": REASON}, format="json"
        )
        codes.append(response.status_code)
    assert codes[:10] == [404] * 10
    assert codes[10] == 429 and response.has_header("Retry-After")
    listing = developer.get("/api/v1/overrides")
    assert listing.status_code == 200, "reading is not throttled by the request limit"
    cache.clear()


def test_every_transition_is_audited_with_before_and_after(blocked, developer, approver):
    override = _request(developer, blocked.pk).json()
    approver.post(f"/api/v1/overrides/{override['id']}/approve", {}, format="json")
    approver.post(f"/api/v1/overrides/{override['id']}/revoke", {}, format="json")
    events = list(AuditEvent.objects.filter(target_type="overrides.override").order_by("id"))
    assert [e.action for e in events] == [
        "override.requested",
        "override.approved",
        "override.revoked",
    ]
    assert events[1].before["state"] == "PENDING" and events[1].after["state"] == "APPROVED"
    assert events[1].actor_label == "token:t-compliance_admin"
