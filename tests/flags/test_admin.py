"""Flags in the admin: toggle column, kill switch with confirmation, rule validation messages,
environment keys shown once, operator-only writes, and the overview tile."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.flags.models import EnvironmentKey, FlagChange, FlagState
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(admin_client_for, tenant, flags):
    return admin_client_for(tenant)


def _state(key: str, environment: str = "production") -> FlagState:
    return FlagState.objects.get(flag__key=key, environment__key=environment)


def test_list_shows_a_toggle_per_environment_and_toggling_works(admin, flags):
    page = admin.get("/admin/flags/flag/").content.decode()
    assert page.count('class="flag-toggle"') == 5 * 3
    assert "production: on" in page and "development: off" in page
    flag = flags["page"]
    response = admin.post(f"/admin/flags/flag/{flag.pk}/toggle/staging/")
    assert response.status_code == 302
    assert _state("page-size", "staging").enabled is True
    assert admin.get(f"/admin/flags/flag/{flag.pk}/toggle/staging/").status_code == 302
    assert _state("page-size", "staging").enabled is True, "a GET changes nothing"
    admin.post(f"/admin/flags/flag/{flag.pk}/toggle/production/")
    assert _state("page-size").enabled is True, "production waits for a second operator"
    change = FlagChange.objects.get(state=_state("page-size"))
    assert (change.status, change.changes) == ("PENDING", {"enabled": False})


def test_kill_switch_asks_first_then_turns_off_the_chosen_environments(admin, flags):
    flag = flags["checkout"]
    change = admin.get(f"/admin/flags/flag/{flag.pk}/change/").content.decode()
    assert "Kill switch: turn off everywhere" in change
    confirm = admin.get(f"/admin/flags/flag/{flag.pk}/kill/").content.decode()
    assert "Turn it off now" in confirm and _state("new-checkout").enabled
    response = admin.post(f"/admin/flags/flag/{flag.pk}/kill/", {"environment": ["production"]})
    assert response.status_code == 302
    state = _state("new-checkout")
    assert not state.enabled and state.killed_at is not None
    listing = admin.get("/admin/flags/flag/").content.decode()
    assert "production: killed" in listing


def test_invalid_rules_in_the_admin_show_the_field_error(admin, flags):
    flag = flags["banner"]
    states = list(FlagState.objects.filter(flag=flag).order_by("environment__sort_order"))
    form = {
        "tenant": flag.tenant_id,
        "key": flag.key,
        "name": flag.name,
        "description": "",
        "value_type": flag.value_type,
        "variants": '{"plain": "Welcome", "promo": "Sale"}',
        "kind": flag.kind,
        "owner": "",
        "tags": "[]",
        "states-TOTAL_FORMS": "3",
        "states-INITIAL_FORMS": "3",
        "states-MIN_NUM_FORMS": "0",
        "states-MAX_NUM_FORMS": "1000",
    }
    for index, state in enumerate(states):
        form.update(
            {
                f"states-{index}-id": state.pk,
                f"states-{index}-flag": flag.pk,
                f"states-{index}-default_variant": state.default_variant,
                f"states-{index}-rules": "[]",
                f"states-{index}-fallthrough": "{}",
            }
        )
        if state.enabled:
            form[f"states-{index}-enabled"] = "on"
    form["states-1-fallthrough"] = (
        '{"split": [{"variant": "plain", "weight": 70}, {"variant": "promo", "weight": 20}]}'
    )
    response = admin.post(f"/admin/flags/flag/{flag.pk}/change/", form)
    assert response.status_code == 200
    assert "Weights add up to 90, not 100." in response.content.decode()
    assert _state("banner", "staging").fallthrough == {}
    form["states-1-fallthrough"] = (
        '{"split": [{"variant": "plain", "weight": 80}, {"variant": "promo", "weight": 20}]}'
    )
    response = admin.post(f"/admin/flags/flag/{flag.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _state("banner", "staging").fallthrough["split"][0]["weight"] == 80


def test_environment_key_is_shown_once(admin, tenant, flags):
    from apps.flags.models import Environment

    staging = Environment.objects.get(tenant=tenant, key="staging")
    response = admin.post(
        "/admin/flags/environmentkey/add/",
        {"tenant": tenant.pk, "environment": staging.pk, "name": "mobile"},
        follow=True,
    )
    page = response.content.decode()
    key = EnvironmentKey.objects.get(name="mobile")
    assert f"ofk_{key.prefix}_" in page
    assert key.secret_hash not in page
    listing = admin.get("/admin/flags/environmentkey/").content.decode()
    assert f"ofk_{key.prefix}_" not in listing


def test_viewers_cannot_toggle_or_kill(tenant, flags, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    add_member(tenant=tenant, user=viewer, role=Role.VIEWER)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(*Permission.objects.filter(content_type__app_label="flags"))
    client = Client()
    client.force_login(viewer)
    flag = flags["page"]
    assert client.post(f"/admin/flags/flag/{flag.pk}/toggle/production/").status_code == 403
    assert (
        client.post(
            f"/admin/flags/flag/{flag.pk}/kill/", {"environment": ["production"]}
        ).status_code
        == 403
    )
    assert _state("page-size").enabled


def test_overview_tile_counts_changes_and_kill_switches(admin, flags):
    from apps.flags import services

    services.kill(flags["checkout"])
    page = admin.get("/admin/").content.decode()
    assert "Feature flags" in page
    assert "kill switches engaged" in page
    assert "not installed yet: flags" not in page


def test_evaluation_preview_says_which_rule_decided(admin, flags):
    flag = flags["checkout"]
    url = f"/admin/flags/flag/{flag.pk}/preview/"
    page = admin.get(
        url, {"environment": "production", "context": '{"targetingKey": "u1", "market": "SA"}'}
    )
    text = page.content.decode()
    assert "TARGETING_MATCH" in text and "Rule 1 matched." in text
    split = admin.get(url, {"environment": "production", "context": '{"targetingKey": "u1"}'})
    assert "No rule matched: the fallthrough split chose by targetingKey." in split.content.decode()
    off = admin.get(url, {"environment": "development", "context": "{}"})
    assert "The flag is off in development" in off.content.decode()
    bad = admin.get(url, {"environment": "production", "context": "[1]"})
    assert "the context must be a JSON object" in bad.content.decode()


def test_a_stale_admin_form_is_refused_not_saved_over_a_newer_change(admin, flags):
    from tests.flags.conftest import set_state

    flag = flags["page"]
    state = _state("page-size", "staging")
    opened = state.version
    set_state(flag, "staging", fallthrough={"variant": "large"})  # someone else, meanwhile
    form = {
        "tenant": flag.tenant_id,
        "key": flag.key,
        "name": flag.name,
        "description": "",
        "value_type": flag.value_type,
        "variants": '{"small": 20, "large": 50}',
        "kind": flag.kind,
        "owner": "",
        "tags": "[]",
        "opened_version": flag.version,
        "states-TOTAL_FORMS": "3",
        "states-INITIAL_FORMS": "3",
        "states-MIN_NUM_FORMS": "0",
        "states-MAX_NUM_FORMS": "1000",
    }
    for index, each in enumerate(
        FlagState.objects.filter(flag=flag).order_by("environment__sort_order")
    ):
        form.update(
            {
                f"states-{index}-id": each.pk,
                f"states-{index}-flag": flag.pk,
                f"states-{index}-default_variant": each.default_variant,
                f"states-{index}-rules": "[]",
                f"states-{index}-fallthrough": "{}"
                if each.pk == state.pk
                else json.dumps(each.fallthrough),
                f"states-{index}-opened_version": opened if each.pk == state.pk else each.version,
            }
        )
        if each.enabled and each.pk != state.pk:
            form[f"states-{index}-enabled"] = "on"
    form["states-1-enabled"] = "on"
    response = admin.post(f"/admin/flags/flag/{flag.pk}/change/", form)
    assert response.status_code == 200
    assert "Someone changed this since you opened it" in response.content.decode()
    assert _state("page-size", "staging").fallthrough == {"variant": "large"}


def test_environment_keys_are_revoked_not_deleted_and_environments_need_a_tenant_admin(
    tenant, flags, django_user_model
):
    from django.contrib.auth.models import Permission

    from apps.flags.models import Environment

    operator = django_user_model.objects.create_user("op", password="pw", is_staff=True)
    add_member(tenant=tenant, user=operator, role=Role.OPERATOR)
    operator.user_permissions.add(*Permission.objects.filter(content_type__app_label="flags"))
    client = Client()
    client.force_login(operator)
    production = Environment.objects.get(tenant=tenant, key="production")
    response = client.post(
        f"/admin/flags/environment/{production.pk}/change/",
        {"name": "Production", "sort_order": 20, "kill_switch_exempt": "on", "tenant": tenant.pk},
    )
    assert response.status_code == 403
    assert Environment.objects.get(pk=production.pk).requires_approval is True
    key = EnvironmentKey.objects.create(
        tenant=tenant, environment=production, name="x", prefix="abcd1234", secret_hash="0" * 64
    )
    assert (
        client.post(f"/admin/flags/environmentkey/{key.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert EnvironmentKey.objects.filter(pk=key.pk).exists()


def test_rejecting_a_change_request_in_the_admin_asks_for_a_reason(admin, flags):
    admin.post(f"/admin/flags/flag/{flags['page'].pk}/toggle/production/")
    change = FlagChange.objects.get(status="PENDING")
    url = "/admin/flags/flagchange/"
    form = admin.post(url, {"action": "reject", "_selected_action": [change.pk]})
    assert b"The requester reads this" in form.content
    assert FlagChange.objects.get(pk=change.pk).status == "PENDING"
    admin.post(
        url,
        {"action": "reject", "_selected_action": [change.pk], "apply": "1", "reason": "Not now."},
    )
    rejected = FlagChange.objects.get(pk=change.pk)
    assert (rejected.status, rejected.decision_reason) == ("REJECTED", "Not now.")
