"""Edge cases found in review: several scans of one commit, findings shared by two tools, four
eyes through API tokens, disabled rules, tool-name case, out-of-range lines and NUL characters,
and a gate asked about a commit that is not the latest."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from apps.compliance.models import CheckRun, Rule, ToolRuleMapping, Violation, ViolationStatus
from apps.overrides import services as overrides
from apps.tenancy.models import ApiToken
from apps.tenancy.roles import Role
from opsportal.context import Actor
from tests.compliance.conftest import SHA, native, passed, violation

pytestmark = pytest.mark.django_db

QUERY = f"repository=acme/web&pr=1&commit_sha={SHA}"
REASON = "A reason that is long enough to be accepted by the API."


def _conftest(namespace: str, message: str) -> list[dict]:
    return [{"filename": "deploy.yaml", "namespace": namespace, "failures": [{"msg": message}]}]


def test_two_conftest_scans_of_one_commit_are_told_apart_by_the_tool_parameter(post_run, tenant):
    ToolRuleMapping(tenant=tenant, tool="*", pattern="*", rule_id="R07").save()
    first = post_run(
        _conftest("k8s", "privileged"),
        content_type="application/vnd.conftest+json",
        query=QUERY + "&tool=conftest-k8s",
    )
    second = post_run(
        _conftest("terraform", "public bucket"),
        content_type="application/vnd.conftest+json",
        query=QUERY + "&tool=conftest-terraform",
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert set(CheckRun.objects.values_list("tool", flat=True)) == {
        "conftest-k8s",
        "conftest-terraform",
    }
    assert Violation.objects.count() == 2


def test_a_finding_reported_by_two_tools_is_resolved_per_tool(post_run):
    same = violation("R19", message="unused import")
    post_run(native(tool="ruff", results=[same]))
    post_run(native(tool="flake8", results=[same]))
    post_run(native(tool="flake8", sha="b" * 40, results=[passed("R19")]))
    by_tool = dict(Violation.objects.values_list("tool", "status"))
    assert by_tool == {"ruff": ViolationStatus.OPEN, "flake8": ViolationStatus.RESOLVED}


def test_the_person_behind_a_token_cannot_approve_their_own_request(
    post_run, tenant, django_user_model
):
    post_run(native(results=[violation("R01")]))
    alice = django_user_model.objects.create_user("alice")
    from apps.tenancy.services import create_api_token

    token, _ = create_api_token(tenant=tenant, name="alice-ci", role=Role.CI, created_by=alice)
    override = overrides.request_override(
        Violation.objects.get(), REASON, actor=Actor(token_id=token.pk, label="token:alice-ci")
    )
    with pytest.raises(overrides.FourEyesViolation):
        overrides.approve_override(override, actor=Actor(user_id=alice.pk, label="alice"))
    other, _ = create_api_token(tenant=tenant, name="alice-admin", role=Role.TENANT_ADMIN)
    ApiToken.objects.filter(pk=other.pk).update(created_by=alice)
    with pytest.raises(overrides.FourEyesViolation):
        overrides.approve_override(override, actor=Actor(token_id=other.pk, label="token"))
    bob = django_user_model.objects.create_user("bob")
    approved = overrides.approve_override(override, actor=Actor(user_id=bob.pk, label="bob"))
    assert approved.state == "APPROVED"


def test_a_disabled_rule_stops_counting_at_once(post_run, make_token, tenant, api):
    post_run(native(results=[violation("R01")]))
    rule = Rule.objects.get(pk="R01")
    rule.enabled = False
    rule.save()
    reader = api(make_token(tenant, Role.VIEWER))
    gate = reader.get("/api/v1/compliance/gate?repository=acme/web&pr=1").json()
    assert (gate["decision"], gate["open_violations"]) == ("PASS", [])


def test_tool_names_in_mappings_are_unique_whatever_their_case(tenant):
    ToolRuleMapping(tenant=tenant, tool="Bandit", pattern="B1*", rule_id="R03").save()
    with pytest.raises(IntegrityError), transaction.atomic():
        ToolRuleMapping(tenant=tenant, tool="bandit", pattern="B1*", rule_id="R01").save()


def test_a_line_beyond_the_database_range_is_400_and_nul_characters_are_stored(post_run):
    huge = {**violation("R19"), "line": 2**31}
    response = post_run(native(results=[huge]))
    assert response.status_code == 400 and "results[0].line" in response.json()["errors"]
    nul = {**violation("R19", message="bad\x00byte"), "context": {"k": "v\x00"}}
    response = post_run(native(results=[nul]))
    assert response.status_code == 201, response.content
    assert Violation.objects.get().message == "bad\ufffdbyte"


def test_the_gate_never_says_merge_for_a_commit_that_is_not_the_latest(post_run, reader_client):
    post_run(native(results=[passed("R01")]))
    url = "/api/v1/compliance/gate?repository=acme/web&pr=1"
    assert reader_client.get(url + f"&commit_sha={SHA[:12]}").json()["can_merge"] is True
    other = reader_client.get(url + "&commit_sha=" + "b" * 40).json()
    assert (other["can_merge"], other["stale"]) == (False, True)


@pytest.fixture
def reader_client(tenant, make_token, api):
    return api(make_token(tenant, Role.VIEWER))
