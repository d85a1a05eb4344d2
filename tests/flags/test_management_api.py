"""The flags management API: create, validate (422 naming the field), lock, kill, RBAC, audit."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.flags.models import Environment, Flag, FlagState
from apps.tenancy.roles import Role
from tests.flags.conftest import set_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(api, make_token, tenant):
    return api(make_token(tenant, Role.OPERATOR))


def _create(client, **body):
    return client.post(
        "/api/v1/flags", {"key": "dark-mode", "name": "Dark mode", **body}, format="json"
    )


def test_create_flag_makes_it_off_everywhere(operator, tenant):
    response = _create(operator, owner="web", tags=["ui"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["variants"] == {"on": True, "off": False}
    assert [
        (s["environment"], s["enabled"], s["default_variant"]) for s in body["environments"]
    ] == [
        ("development", False, "off"),
        ("staging", False, "off"),
        ("production", False, "off"),
    ]
    assert AuditEvent.objects.filter(action="flag.created", tenant=tenant).count() == 1


@pytest.mark.parametrize(
    "changes, field",
    [
        (
            {
                "fallthrough": {
                    "split": [{"variant": "on", "weight": 60}, {"variant": "off", "weight": 30}]
                }
            },
            "fallthrough.split",
        ),
        (
            {
                "rules": [
                    {
                        "conditions": {"attribute": "email", "op": "regex", "value": "([a-z"},
                        "variant": "on",
                    }
                ]
            },
            "rules[0].conditions.value",
        ),
        ({"rules": [{"segment": "ghosts", "variant": "on"}]}, "rules[0].segment"),
        (
            {
                "rules": [
                    {
                        "conditions": {"attribute": "plan", "op": "equals", "value": "pro"},
                        "variant": "maybe",
                    }
                ]
            },
            "rules[0].variant",
        ),
        ({"default_variant": "maybe"}, "default_variant"),
        (
            {
                "rules": [
                    {
                        "conditions": {"attribute": "v", "op": "semver_gte", "value": "one"},
                        "variant": "on",
                    }
                ]
            },
            "rules[0].conditions.value",
        ),
    ],
)
def test_invalid_rules_get_422_naming_the_field(operator, changes, field):
    created = _create(operator).json()
    version = created["environments"][2]["version"]
    response = operator.patch(
        "/api/v1/flags/dark-mode/environments/production",
        {**changes, "version": version},
        format="json",
    )
    assert response.status_code == 422, response.content
    assert field in response.json()["errors"], response.json()
    state = FlagState.objects.get(flag__key="dark-mode", environment__key="production")
    assert state.version == version and state.rules == [], "nothing was written"


def test_bad_variants_for_the_type_are_422(operator):
    response = _create(operator, value_type="integer", variants={"a": 1, "b": "two"})
    assert response.status_code == 422
    assert "variants.b" in response.json()["errors"]


def test_stale_version_is_409_and_stale_if_match_is_412(operator):
    _create(operator)
    url = "/api/v1/flags/dark-mode/environments/staging"
    current = operator.get(url)
    etag, version = current["ETag"], current.json()["version"]
    assert (
        operator.patch(url, {"enabled": True, "version": version}, format="json").status_code == 200
    )
    stale = operator.patch(url, {"enabled": False, "version": version}, format="json")
    assert stale.status_code == 409
    assert (
        operator.patch(url, {"enabled": False}, format="json", HTTP_IF_MATCH=etag).status_code
        == 412
    )
    assert operator.patch(url, {"enabled": False}, format="json").status_code == 428
    assert FlagState.objects.get(flag__key="dark-mode", environment__key="staging").enabled


def test_kill_turns_it_off_in_chosen_environments(operator):
    _create(operator)
    flag = Flag.objects.get(key="dark-mode")
    for environment in ("staging", "production"):
        set_state(flag, environment, enabled=True)
    response = operator.post(
        "/api/v1/flags/dark-mode/kill", {"environments": ["production"]}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert [(s["environment"], s["enabled"]) for s in body["states"]] == [("production", False)]
    assert body["states"][0]["killed_at"] and body["change_requests"] == []
    assert FlagState.objects.get(flag__key="dark-mode", environment__key="staging").enabled
    unknown = operator.post(
        "/api/v1/flags/dark-mode/kill", {"environments": ["moon"]}, format="json"
    )
    assert unknown.status_code == 400


def test_viewers_read_but_cannot_write(api, make_token, tenant, operator):
    _create(operator)
    viewer = api(make_token(tenant, Role.VIEWER))
    assert viewer.get("/api/v1/flags").status_code == 200
    assert _create(viewer, key="other").status_code == 403
    assert viewer.post("/api/v1/flags/dark-mode/kill", {}, format="json").status_code == 403


def test_other_tenants_flags_are_404(operator, api, make_token, other_tenant):
    _create(operator)
    theirs = api(make_token(other_tenant, Role.OPERATOR))
    assert theirs.get("/api/v1/flags/dark-mode").status_code == 404
    assert theirs.post("/api/v1/flags/dark-mode/kill", {}, format="json").status_code == 404
    assert theirs.get("/api/v1/flags").json()["results"] == []


def test_segments_are_validated_and_protected_while_used(operator):
    bad = operator.post(
        "/api/v1/flags/segments",
        {
            "key": "pilot",
            "name": "Pilot",
            "conditions": {"all": [{"attribute": "cohort", "op": "nope", "value": 1}]},
        },
        format="json",
    )
    assert bad.status_code == 422 and "conditions.all[0].op" in bad.json()["errors"]
    good = operator.post(
        "/api/v1/flags/segments",
        {
            "key": "pilot",
            "name": "Pilot",
            "conditions": {"attribute": "cohort", "op": "equals", "value": "pilot"},
        },
        format="json",
    )
    assert good.status_code == 201
    _create(operator)
    operator.patch(
        "/api/v1/flags/dark-mode/environments/staging",
        {"rules": [{"segment": "pilot", "variant": "on"}], "version": 1},
        format="json",
    )
    refused = operator.delete("/api/v1/flags/segments/pilot")
    assert refused.status_code == 409 and "dark-mode@staging" in refused.json()["detail"]


def test_duplicate_key_is_422(operator):
    _create(operator)
    again = _create(operator)
    assert again.status_code == 422 and "key" in again.json()["errors"]


def test_every_change_bumps_the_environment_version(operator, tenant):
    _create(operator)
    before = Environment.objects.get(tenant=tenant, key="staging").config_version
    operator.patch(
        "/api/v1/flags/dark-mode/environments/staging",
        {"enabled": True, "version": 1},
        format="json",
    )
    after = Environment.objects.get(tenant=tenant, key="staging").config_version
    assert after == before + 1


@pytest.mark.parametrize(
    "changes, field, status",
    [
        ({"rules": [{"segment": ["a"], "variant": "on"}]}, "rules[0].segment", 422),
        (
            {"rules": [{"conditions": {"attribute": "a", "op": "is_set"}, "variant": {"x": 1}}]},
            "rules[0].variant",
            422,
        ),
        ({"default_variant": ["on"]}, "default_variant", 400),
        (
            {
                "rules": [
                    {
                        "conditions": {"attribute": "d", "op": "after", "value": "9999-12-31"},
                        "variant": "on",
                    }
                ]
            },
            "rules[0].conditions.value",
            422,
        ),
    ],
)
def test_malformed_names_and_dates_are_refused_not_500(operator, changes, field, status):
    _create(operator)
    response = operator.patch(
        "/api/v1/flags/dark-mode/environments/staging", {**changes, "version": 1}, format="json"
    )
    assert response.status_code == status, response.content
    assert field in response.json()["errors"], response.json()
