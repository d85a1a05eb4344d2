"""flagd file import: the portal's own export comes back identical; other flagd files import
where they fit and report, per flag, what does not; nothing is half-imported."""

from __future__ import annotations

import copy
import json

import pytest
from django.core.management import call_command

from apps.flags import flagd_import
from apps.flags.flagd import environment_document
from apps.flags.models import Environment, Flag, FlagState, Segment
from apps.flags.services import ensure_environments
from tests.flags.conftest import set_state

pytestmark = pytest.mark.django_db


def _comparable(document: dict) -> dict:
    """What must survive a round trip: flags and evaluators, not the per-portal versions."""
    flags = copy.deepcopy(document["flags"])
    for definition in flags.values():
        for name in ("flagVersion", "stateVersion"):
            definition["metadata"].pop(name)
    return {"flags": flags, "$evaluators": document.get("$evaluators", {})}


def test_export_import_export_is_lossless(tenant, other_tenant, flags):
    set_state(
        flags["banner"],
        "production",
        rules=[
            {"segment": "gulf", "variant": "promo"},
            {
                "segment": "gulf",
                "conditions": {
                    "any": [
                        {"attribute": "plan", "op": "equals", "value": "pro"},
                        {"attribute": "age", "op": "gte", "value": 18},
                        {"attribute": "app", "op": "semver_lt", "value": "2.0.0"},
                        {"attribute": "signup", "op": "after", "value": "2026-01-01"},
                        {"none": [{"attribute": "email", "op": "ends_with", "value": "@x.io"}]},
                    ]
                },
                "split": [{"variant": "promo", "weight": 30}, {"variant": "plain", "weight": 70}],
            },
        ],
        fallthrough={"variant": "promo"},
    )
    source = environment_document(Environment.objects.get(tenant=tenant, key="production"))
    ensure_environments(other_tenant)
    target = Environment.objects.get(tenant=other_tenant, key="staging")
    report = flagd_import.import_document(other_tenant, target, json.dumps(source))
    assert report.unsupported == {}
    assert sorted(report.imported) == sorted(source["flags"])
    again = environment_document(Environment.objects.get(pk=target.pk))
    for definition in source["flags"].values():  # the other environment's name, by design
        definition["metadata"]["environment"] = "staging"
    assert _comparable(again) == _comparable(source)


FLAGD_FILE = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "show-welcome": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {
                "if": [
                    {"==": [{"var": "locale"}, "de"]},
                    "on",
                    {"$ref": "internal"},
                    "on",
                    {"fractional": [["on", 1], ["off", 3]]},
                ]
            },
        },
        "color": {
            "state": "DISABLED",
            "variants": {"red": "#f00", "blue": "#00f"},
            "defaultVariant": "red",
        },
        "thirds": {
            "state": "ENABLED",
            "variants": {"a": 1, "b": 2, "c": 3},
            "defaultVariant": "a",
            "targeting": {"fractional": [["a", 1], ["b", 1], ["c", 1]]},
        },
        "by-email": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"fractional": [{"var": "email"}, ["on", 50], ["off", 50]]},
        },
        "mixed": {"state": "ENABLED", "variants": {"a": 1, "b": "x"}, "defaultVariant": "a"},
        "custom-op": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"teleport": [1]}, "on"]},
        },
    },
    "$evaluators": {"internal": {"ends_with": [{"var": "email"}, "@acme.example"]}},
}


def test_a_flagd_file_imports_what_fits_and_reports_the_rest(tenant):
    ensure_environments(tenant)
    staging = Environment.objects.get(tenant=tenant, key="staging")
    report = flagd_import.import_document(tenant, staging, FLAGD_FILE)
    assert sorted(report.imported) == ["color", "show-welcome"]
    assert report.segments == ["internal"]
    assert "total 3" in report.unsupported["thirds"][0]
    assert "custom expression" in report.unsupported["by-email"][0]
    assert "mixed types" in report.unsupported["mixed"][0]
    assert "teleport" in report.unsupported["custom-op"][0]
    assert not Flag.objects.filter(key__in=["thirds", "by-email", "mixed", "custom-op"]).exists()

    state = FlagState.objects.get(flag__key="show-welcome", environment=staging)
    assert state.rules == [
        {"conditions": {"jsonlogic": {"==": [{"var": "locale"}, "de"]}}, "variant": "on"},
        {"segment": "internal", "variant": "on"},
    ]
    assert state.fallthrough == {
        "split": [{"variant": "on", "weight": 25}, {"variant": "off", "weight": 75}]
    }, "weights 1:3 scale exactly to 25/75: every user keeps their bucket"
    assert Segment.objects.get(key="internal").conditions == {
        "attribute": "email",
        "op": "ends_with",
        "value": "@acme.example",
    }
    assert FlagState.objects.get(flag__key="color", environment=staging).enabled is False


def test_scaled_weights_keep_every_users_bucket(tenant):
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    from apps.flags.evaluation import compile_flag_set, evaluate

    ensure_environments(tenant)
    staging = Environment.objects.get(tenant=tenant, key="staging")
    flagd_import.import_document(tenant, staging, FLAGD_FILE)
    ours = compile_flag_set(environment_document(staging))["show-welcome"]
    reference = FlagdCore()
    reference.set_flags(copy.deepcopy({k: v for k, v in FLAGD_FILE.items() if k != "$schema"}))
    for user in range(2000):
        context = {"targetingKey": f"u{user}", "email": "x@y.z"}
        expected = reference.resolve_boolean_value(
            "show-welcome",
            False,
            EvaluationContext(targeting_key=f"u{user}", attributes={"email": "x@y.z"}),
        )
        assert evaluate(ours, context).variant == expected.variant


def test_dry_run_writes_nothing_and_the_command_prints_the_report(tenant, tmp_path, capsys):
    ensure_environments(tenant)
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(FLAGD_FILE))
    call_command("import_flagd", str(path), tenant=tenant.slug, environment="staging", dry_run=True)
    printed = json.loads(capsys.readouterr().out)
    assert sorted(printed["imported"]) == ["color", "show-welcome"]
    assert "thirds" in printed["unsupported"]
    assert not Flag.objects.exists()


def test_raw_jsonlogic_conditions_are_validated(tenant, flags):
    from apps.flags import rules

    with pytest.raises(rules.RuleError) as raised:
        rules.validate_conditions({"jsonlogic": {"teleport": []}})
    assert "conditions.jsonlogic" in raised.value.errors


def test_import_api_refuses_environments_that_need_approval(api, make_token, tenant):
    from apps.tenancy.roles import Role

    operator = api(make_token(tenant, Role.OPERATOR))
    ensure_environments(tenant)
    dry = operator.post(
        "/api/v1/flags/import?environment=production&dry_run=true", FLAGD_FILE, format="json"
    )
    assert dry.status_code == 200 and "thirds" in dry.json()["unsupported"]
    real = operator.post("/api/v1/flags/import?environment=production", FLAGD_FILE, format="json")
    assert real.status_code == 422 and "environment" in real.json()["errors"]
    staging = operator.post("/api/v1/flags/import?environment=staging", FLAGD_FILE, format="json")
    assert sorted(staging.json()["imported"]) == ["color", "show-welcome"]
    viewer = api(make_token(tenant, Role.VIEWER))
    assert (
        viewer.post(
            "/api/v1/flags/import?environment=staging", FLAGD_FILE, format="json"
        ).status_code
        == 403
    )


def test_malformed_definitions_are_reported_not_crashed_on(tenant):
    ensure_environments(tenant)
    staging = Environment.objects.get(tenant=tenant, key="staging")
    document = {
        "flags": {
            "bad-date": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {
                    "if": [
                        {
                            "and": [
                                {"starts_with": [{"var": "d"}, ""]},
                                {">=": [{"var": "d"}, "2024.10.01"]},
                            ]
                        },
                        "on",
                    ]
                },
            },
            "list-default": {
                "state": "ENABLED",
                "variants": {"on": True},
                "defaultVariant": ["on"],
            },
            "numeric-metadata": {
                "state": "ENABLED",
                "variants": {"on": True},
                "defaultVariant": "on",
                "metadata": 5,
            },
            "list-variant": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {"fractional": [[["on"], 50], ["off", 50]]},
            },
            "fine": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"},
        }
    }
    report = flagd_import.import_document(tenant, staging, document)
    assert report.imported == ["fine"]
    assert set(report.unsupported) == {
        "bad-date",
        "list-default",
        "numeric-metadata",
        "list-variant",
    }
