"""Change requests (four eyes) and scheduled changes, with time controlled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.flags import changes, services
from apps.flags.models import Environment, FlagChange, FlagState
from apps.tenancy.roles import Role

pytestmark = pytest.mark.django_db
URL = "/api/v1/flags/page-size/environments/production"


@pytest.fixture
def alice(api, make_token, tenant):
    return api(make_token(tenant, Role.OPERATOR))


@pytest.fixture
def bob(api, make_token, tenant):
    return api(make_token(tenant, Role.OPERATOR))


def _state(environment: str = "production") -> FlagState:
    return FlagState.objects.get(flag__key="page-size", environment__key=environment)


def test_production_change_waits_for_a_second_operator(alice, bob, flags):
    version = _state().version
    response = alice.patch(
        URL, {"fallthrough": {"variant": "large"}, "version": version}, format="json"
    )
    assert response.status_code == 202, response.content
    change = response.json()
    assert change["status"] == "PENDING" and change["flag"] == "page-size"
    assert _state().fallthrough == {}, "nothing served changes before approval"

    own = alice.post(f"/api/v1/flags/changes/{change['id']}/approve", {}, format="json")
    assert own.status_code == 403, "four eyes: not the requester"
    approved = bob.post(f"/api/v1/flags/changes/{change['id']}/approve", {}, format="json")
    assert approved.status_code == 200
    assert approved.json()["status"] == "APPLIED"
    assert _state().fallthrough == {"variant": "large"}
    again = bob.post(f"/api/v1/flags/changes/{change['id']}/approve", {}, format="json")
    assert again.status_code == 409 and "Allowed now" not in again.json()["detail"]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"flag_change.requested", "flag_change.approved", "flag_change.applied"} <= actions


def test_invalid_change_is_refused_when_proposed(alice, flags):
    bad = {"fallthrough": {"variant": "huge"}, "version": _state().version}
    response = alice.patch(URL, bad, format="json")
    assert response.status_code == 422 and "fallthrough.variant" in response.json()["errors"]
    assert FlagChange.objects.count() == 0


def test_reject_needs_a_reason_and_cancel_is_for_open_changes(alice, bob, flags):
    change = alice.patch(URL, {"enabled": False, "version": _state().version}, format="json").json()
    assert (
        bob.post(f"/api/v1/flags/changes/{change['id']}/reject", {}, format="json").status_code
        == 422
    )
    rejected = bob.post(
        f"/api/v1/flags/changes/{change['id']}/reject",
        {"reason": "not during the sale"},
        format="json",
    )
    assert rejected.json()["status"] == "REJECTED"
    cancel = alice.post(f"/api/v1/flags/changes/{change['id']}/cancel", {}, format="json")
    assert cancel.status_code == 409
    assert _state().enabled is True


def test_scheduled_change_applies_when_due(alice, flags, django_capture_on_commit_callbacks):
    at = timezone.now() + timedelta(hours=2)
    response = alice.patch(
        "/api/v1/flags/page-size/environments/staging",
        {"enabled": True, "apply_at": at.isoformat(), "version": _state("staging").version},
        format="json",
    )
    assert response.status_code == 202 and response.json()["status"] == "SCHEDULED"
    assert changes.apply_due(now=at - timedelta(minutes=1)) == []
    assert _state("staging").enabled is False
    with django_capture_on_commit_callbacks(execute=True):
        applied = changes.apply_due(now=at + timedelta(seconds=30))
    assert [c.status for c in applied] == ["APPLIED"]
    assert _state("staging").enabled is True
    assert changes.apply_due(now=at + timedelta(minutes=5)) == [], "applied once"


def test_schedule_in_the_past_is_refused(alice, flags):
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    body = {"enabled": True, "apply_at": past, "version": _state("staging").version}
    response = alice.patch("/api/v1/flags/page-size/environments/staging", body, format="json")
    assert response.status_code == 422 and "apply_at" in response.json()["errors"]


def test_approved_schedule_waits_for_its_time_then_applies(alice, bob, flags):
    at = timezone.now() + timedelta(days=1)
    body = {"enabled": False, "apply_at": at.isoformat(), "version": _state().version}
    change = alice.patch(URL, body, format="json").json()
    approved = bob.post(f"/api/v1/flags/changes/{change['id']}/approve", {}, format="json").json()
    assert approved["status"] == "SCHEDULED" and _state().enabled is True
    changes.apply_due(now=at + timedelta(seconds=1))
    assert _state().enabled is False


def test_a_change_that_no_longer_fits_fails_with_an_alert(
    alice, flags, tenant, django_capture_on_commit_callbacks
):
    services.create_segment(
        tenant, key="vip", name="VIP", conditions={"attribute": "vip", "op": "is_set"}
    )
    at = timezone.now() + timedelta(hours=1)
    body = {
        "rules": [{"segment": "vip", "variant": "large"}],
        "apply_at": at.isoformat(),
        "version": _state("staging").version,
    }
    change = alice.patch("/api/v1/flags/page-size/environments/staging", body, format="json").json()
    services.delete_segment(services.Segment.objects.get(key="vip"))
    with django_capture_on_commit_callbacks(execute=True):
        (failed,) = changes.apply_due(now=at)
    assert failed.status == "FAILED" and "vip" in failed.error
    assert _state("staging").rules == []
    alert = Alert.objects.get(dedup_key=f"flags:change-failed:{change['id']}")
    assert alert.tier == 2


def test_kill_switch_is_immediate_unless_the_environment_says_otherwise(alice, flags, tenant):
    response = alice.post(
        "/api/v1/flags/page-size/kill", {"environments": ["production"]}, format="json"
    )
    assert response.json()["states"][0]["enabled"] is False
    services.update_state(_state(), changes={"enabled": True}, expected_version=_state().version)
    Environment.objects.filter(tenant=tenant, key="production").update(kill_switch_exempt=False)
    response = alice.post(
        "/api/v1/flags/page-size/kill", {"environments": ["production"]}, format="json"
    )
    body = response.json()
    assert body["states"][0]["enabled"] is True
    assert body["change_requests"][0]["changes"] == {"enabled": False}


def test_a_token_its_requester_created_cannot_approve(admin_client_for, tenant, flags, api):
    from django.contrib.auth import get_user_model

    from apps.tenancy.services import create_api_token

    admin = admin_client_for(tenant)  # the user "root"
    admin.post(f"/admin/flags/flag/{flags['page'].pk}/toggle/production/")
    change = FlagChange.objects.get(status="PENDING")
    root = get_user_model().objects.get(username="root")
    _, own_token = create_api_token(
        tenant=tenant, name="root's", role=Role.OPERATOR, created_by=root
    )
    response = api(own_token).post(f"/api/v1/flags/changes/{change.pk}/approve", {}, format="json")
    assert response.status_code == 403, "four eyes: the person behind the token asked for it"
    assert FlagChange.objects.get(pk=change.pk).status == "PENDING"
