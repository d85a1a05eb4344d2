"""The compliance and override admin: the reject reason form, four eyes in the admin, the pending
queue as the default view, expiring approvals highlighted, rule edits audited, mapping patterns
validated, and the overview tiles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.compliance.models import Rule, ToolRuleMapping, Violation
from apps.overrides import services
from apps.overrides.models import Override, OverrideState
from opsportal.context import Actor
from tests.compliance.conftest import native, violation

pytestmark = pytest.mark.django_db

REASON = "Vendored test fixture, not a real credential at all."
CHANGELIST = "/admin/overrides/override/"


@pytest.fixture
def pending(post_run):
    post_run(native(results=[violation("R01")]))
    return services.request_override(
        Violation.objects.get(), REASON, actor=Actor(label="dev", user_id=None)
    )


def _action(client, action: str, override: Override, **extra):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [override.pk], **extra},
        follow=True,
    )


def test_reject_asks_for_a_reason_then_rejects(admin_client_for, tenant, pending):
    client = admin_client_for(tenant)
    form = _action(client, "reject", pending)
    assert b"The requester reads this" in form.content
    assert Override.objects.get().state == OverrideState.PENDING
    _action(client, "reject", pending, apply="1", reason="Rotate it instead.")
    rejected = Override.objects.get()
    assert rejected.state == OverrideState.REJECTED
    assert rejected.decision_reason == "Rotate it instead."
    assert rejected.decided_by_label == "root"


def test_an_admin_cannot_approve_an_override_they_requested(
    admin_client_for, tenant, post_run, django_user_model
):
    client = admin_client_for(tenant)
    root = django_user_model.objects.get(username="root")
    post_run(native(results=[violation("R01")]))
    own = services.request_override(
        Violation.objects.get(), REASON, actor=Actor(user_id=root.pk, label="root")
    )
    response = _action(client, "approve", own)
    assert "four eyes" in response.content.decode()
    assert Override.objects.get().state == OverrideState.PENDING


def test_the_pending_queue_is_the_default_and_expiring_approvals_stand_out(
    admin_client_for, tenant, pending
):
    client = admin_client_for(tenant)
    assert b"acme/web#1" in client.get(CHANGELIST).content
    services.approve_override(pending, actor=Actor(label="admin"))
    assert b"acme/web#1" not in client.get(CHANGELIST).content, "no longer pending"
    Override.objects.update(expires_at=timezone.now() + timedelta(days=2))
    page = client.get(CHANGELIST + "?expiring=3d").content
    assert b'class="expiring-soon"' in page


def test_a_tier_change_in_the_admin_is_audited(admin_client_for, tenant):
    client = admin_client_for(tenant)
    rule = Rule.objects.get(pk="R19")
    response = client.post(
        "/admin/compliance/rule/R19/change/",
        {
            "name": rule.name,
            "slug": rule.slug,
            "description": rule.description,
            "tier": "BLOCK",
            "category": rule.category,
            "policy_file": rule.policy_file,
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content[:500]
    event = AuditEvent.objects.filter(action="rule.tier_changed").get()
    assert (event.before["tier"], event.after["tier"]) == ("WARNING", "BLOCK")


def test_a_mapping_pattern_with_an_inner_wildcard_is_refused(admin_client_for, tenant):
    client = admin_client_for(tenant)
    response = client.post(
        "/admin/compliance/toolrulemapping/add/",
        {"tenant": tenant.pk, "tool": "ruff", "pattern": "S*05", "rule": "R03"},
    )
    assert response.status_code == 200 and b"errorlist" in response.content
    assert not ToolRuleMapping.objects.exists()


def test_overview_tiles_show_blocked_pull_requests_and_pending_overrides(
    admin_client_for, tenant, pending
):
    page = admin_client_for(tenant).get("/admin/").content.decode()
    assert "Compliance gate" in page and "pull requests blocked" in page
    assert "pending decision" in page
    assert "not installed yet: CI runs" not in page, "the placeholder is gone"


def test_a_settings_change_recomputes_the_stored_decisions(admin_client_for, tenant, post_run):
    from apps.compliance.models import ComplianceSettings, PullRequest
    from apps.compliance.services import settings_for
    from apps.compliance.tasks import refresh_decisions
    from apps.core.models import OutboxMessage

    post_run(native(results=[violation("R19")]))
    config = settings_for(tenant)
    assert PullRequest.objects.get().decision == "PASS"
    response = admin_client_for(tenant).post(
        f"/admin/compliance/compliancesettings/{config.pk}/change/",
        {
            "tenant": tenant.pk,
            "weight_block": 10,
            "weight_override": 3,
            "weight_warning": 40,
            "pass_threshold": 70,
            "unmapped_results": "reject",
        },
    )
    assert response.status_code == 302, response.content[:400]
    assert ComplianceSettings.objects.get().version == config.version + 1
    message = OutboxMessage.objects.get(task_name="compliance.refresh_decisions")
    assert refresh_decisions(**message.kwargs) == 1
    assert PullRequest.objects.get().decision == "FAIL"
