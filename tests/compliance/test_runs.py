"""Posting runs: the decision in the response, the violation lifecycle, the three formats and
their mappings, idempotency, and bad input that stores nothing."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.audit.models import AuditEvent
from apps.compliance.models import (
    CheckResult,
    CheckRun,
    PullRequest,
    ToolRuleMapping,
    Violation,
    ViolationStatus,
)
from apps.core.models import OutboxMessage
from apps.tenancy.roles import Role
from tests.compliance.conftest import (
    SHA,
    native,
    passed,
    sarif,
    sarif_result,
    violation,
)

pytestmark = pytest.mark.django_db


def _stored() -> tuple[int, int, int, int]:
    return (
        PullRequest.objects.count(),
        CheckRun.objects.count(),
        CheckResult.objects.count(),
        Violation.objects.count(),
    )


def test_block_violation_without_override_blocks_merge(post_run):
    response = post_run(
        native(results=[violation("R01", message="AWS key"), passed("R02"), passed("R04")])
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["decision"] == "BLOCKED" and body["can_merge"] is False
    assert body["score"] == 90
    assert body["counts"]["open"] == {"BLOCK": 1, "OVERRIDE": 0, "WARNING": 0}
    assert [v["rule_id"] for v in body["blocking_violations"]] == ["R01"]
    check = body["check_run"]
    assert check["conclusion"] == "failure" and check["head_sha"] == SHA
    assert check["output"]["annotations"][0]["path"] == "src/app.py"
    assert check["output"]["annotations"][0]["annotation_level"] == "failure"
    assert body["results"] == {
        "total": 3,
        "passed": 2,
        "violations": 1,
        "suppressed": 0,
        "ignored": 0,
    }


def test_clean_run_passes_and_the_check_succeeds(post_run):
    body = post_run(native(results=[passed("R01"), passed("R19")])).json()
    assert (body["decision"], body["can_merge"], body["score"]) == ("PASS", True, 100)
    assert body["check_run"]["conclusion"] == "success"


def test_score_below_threshold_fails_and_never_reports_neutral(post_run, tenant):
    # 10 OVERRIDE-tier violations (R09..R18) cost 30 points: 70 is still a pass.
    ten = [violation(f"R{n:02d}", path=f"f{n}.py") for n in range(9, 19)]
    body = post_run(native(results=ten)).json()
    assert (body["score"], body["decision"]) == (70, "PASS")
    one_more = [*ten, violation("R19", path="lint.py")]
    body = post_run(native(sha="b" * 40, results=one_more)).json()
    assert (body["score"], body["decision"], body["can_merge"]) == (69, "FAIL", False)
    assert body["check_run"]["conclusion"] == "failure"


def test_tenant_weights_and_threshold_change_the_score(post_run, tenant):
    from apps.compliance.services import settings_for

    config = settings_for(tenant)
    config.weight_warning, config.pass_threshold = 20, 90
    config.save()
    body = post_run(native(results=[violation("R19")])).json()
    assert (body["score"], body["decision"]) == (80, "FAIL")


def test_same_commit_and_tool_posted_twice_returns_the_first_run(post_run):
    first = post_run(native(results=[violation("R19")]))
    again = post_run(native(results=[violation("R19"), violation("R20")]))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert CheckResult.objects.count() == 1, "the repeat stored nothing"


def test_idempotency_key_replays_and_rejects_a_different_body(post_run):
    body = native(results=[violation("R19")])
    first = post_run(body, HTTP_IDEMPOTENCY_KEY="run-1")
    replay = post_run(body, HTTP_IDEMPOTENCY_KEY="run-1")
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
    other = post_run(native(sha="c" * 40, results=[]), HTTP_IDEMPOTENCY_KEY="run-1")
    assert other.status_code == 422
    assert CheckRun.objects.count() == 1


def test_violation_absent_from_the_next_run_is_resolved_with_its_commit(post_run):
    post_run(native(results=[violation("R19", line=10), violation("R25", path="CHANGELOG.md")]))
    second = "b" * 40
    body = post_run(native(sha=second, results=[violation("R19", line=42)])).json()
    assert (body["new_violations"], body["resolved_violations"]) == (0, 1)
    moved = Violation.objects.get(rule_id="R19")
    assert moved.status == ViolationStatus.OPEN and moved.line == 42, "moving code keeps it open"
    gone = Violation.objects.get(rule_id="R25")
    assert gone.status == ViolationStatus.RESOLVED and gone.resolved_by_commit == second
    assert Violation.objects.count() == 2


def test_a_resolved_violation_that_comes_back_is_reopened(post_run):
    post_run(native(results=[violation("R19")]))
    post_run(native(sha="b" * 40, results=[passed("R19")]))
    body = post_run(native(sha="c" * 40, results=[violation("R19")])).json()
    assert body["new_violations"] == 1
    reopened = Violation.objects.get()
    assert reopened.status == ViolationStatus.OPEN and reopened.resolved_at is None


def test_a_run_of_another_tool_does_not_resolve_this_tools_violations(post_run):
    post_run(native(tool="policies", results=[violation("R19")]))
    post_run(native(tool="other", results=[passed("R04")]))
    assert Violation.objects.get().status == ViolationStatus.OPEN


def test_unknown_rule_is_422_listing_it_and_stores_nothing(post_run):
    response = post_run(native(results=[violation("R19"), violation("R99"), violation("R98")]))
    assert response.status_code == 422
    problem = response.json()
    assert sorted(problem["errors"]["unknown_rules"]) == ["R98 (1 result)", "R99 (1 result)"]
    assert _stored() == (0, 0, 0, 0)


def test_malformed_native_body_is_400_naming_the_field_path(post_run):
    response = post_run(native(results=[passed("R01"), {"rule_id": "R02", "status": "MAYBE"}]))
    assert response.status_code == 400
    assert "results[1].status" in response.json()["errors"]
    assert _stored() == (0, 0, 0, 0)


def test_invalid_json_is_400(ci):
    response = ci.post("/api/v1/compliance/runs", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_unsupported_content_type_is_415(ci):
    response = ci.post("/api/v1/compliance/runs", data="{}", content_type="text/plain")
    assert response.status_code == 415


def test_missing_identity_is_400_for_each_field(post_run):
    response = post_run(sarif([]), content_type="application/sarif+json", query="repository=x")
    assert response.status_code == 400
    assert {"repository", "pull_request", "commit_sha"} <= set(response.json()["errors"])


@override_settings(COMPLIANCE_MAX_RESULTS=5)
def test_more_results_than_the_limit_is_413(post_run):
    response = post_run(native(results=[passed("R01")] * 6))
    assert response.status_code == 413
    assert _stored() == (0, 0, 0, 0)


def test_viewer_and_operator_tokens_cannot_post_runs(tenant, make_token, api, post_run):
    for role in (Role.VIEWER, Role.OPERATOR):
        response = post_run(native(), client=api(make_token(tenant, role)))
        assert response.status_code == 403


def _map(tenant, tool, pattern, rule_id):
    ToolRuleMapping(tenant=tenant, tool=tool, pattern=pattern, rule_id=rule_id).save()


SARIF_QUERY = f"repository=acme/web&pr=7&commit_sha={SHA}"


def test_sarif_results_map_through_the_most_specific_pattern(post_run, tenant):
    _map(tenant, "ruff", "*", "R19")
    _map(tenant, "ruff", "S*", "R03")
    _map(tenant, "ruff", "S105", "R01")
    document = sarif(
        [
            sarif_result("S105", text="hardcoded password"),
            sarif_result("S608", text="sql injection"),
            sarif_result("F401", text="unused import"),
        ]
    )
    response = post_run(document, content_type="application/sarif+json", query=SARIF_QUERY)
    assert response.status_code == 201, response.content
    assert response.json()["tool"] == "ruff", "the tool comes from the SARIF driver"
    assert dict(Violation.objects.values_list("message", "rule_id")) == {
        "hardcoded password": "R01",
        "sql injection": "R03",
        "unused import": "R19",
    }


def test_unmapped_sarif_results_are_rejected_listing_them(post_run, tenant):
    _map(tenant, "ruff", "S*", "R03")
    document = sarif([sarif_result("S105"), sarif_result("F401"), sarif_result("F401")])
    response = post_run(document, content_type="application/sarif+json", query=SARIF_QUERY)
    assert response.status_code == 422
    assert response.json()["errors"]["unmapped"] == ["ruff:F401 (2 results)"]
    assert _stored() == (0, 0, 0, 0)


def test_unmapped_results_go_to_the_catch_all_rule_when_the_tenant_says_so(post_run, tenant):
    from apps.compliance.services import settings_for

    config = settings_for(tenant)
    config.unmapped_results, config.catch_all_rule_id = "catch_all", "R19"
    config.save()
    document = sarif([sarif_result("F401")])
    response = post_run(document, content_type="application/sarif+json", query=SARIF_QUERY)
    assert response.status_code == 201
    assert Violation.objects.get().rule_id == "R19"


def test_suppressed_sarif_results_are_kept_visible_but_not_scored(post_run, tenant):
    _map(tenant, "ruff", "*", "R03")
    suppressed = {**sarif_result("S105"), "suppressions": [{"kind": "inSource"}]}
    response = post_run(
        sarif([suppressed]), content_type="application/sarif+json", query=SARIF_QUERY
    )
    body = response.json()
    assert (body["decision"], body["score"], body["results"]["suppressed"]) == ("PASS", 100, 1)
    assert Violation.objects.get().status == ViolationStatus.SUPPRESSED
    assert CheckResult.objects.get().suppressed is True


def test_conftest_output_maps_by_metadata_message_prefix_and_namespace(post_run, tenant):
    _map(tenant, "conftest", "kubernetes.*", "R07")
    document = [
        {
            "filename": "deploy/api.yaml",
            "namespace": "kubernetes.security",
            "successes": 4,
            "failures": [
                {"msg": "privileged container", "metadata": {"rule_id": "R06"}},
                {"msg": "R14: no readinessProbe"},
                {"msg": "hostPath volume mounted"},
            ],
            "warnings": [],
        }
    ]
    response = post_run(document, content_type="application/vnd.conftest+json", query=SARIF_QUERY)
    assert response.status_code == 201, response.content
    rules = set(Violation.objects.values_list("rule_id", flat=True))
    assert rules == {"R06", "R14", "R07"}
    assert response.json()["decision"] == "BLOCKED"


def test_every_run_is_audited_and_alerts_are_left_in_the_outbox(post_run):
    post_run(native(results=[violation("R01")]))
    event = AuditEvent.objects.get(action="compliance.run_recorded")
    assert event.after["decision"] == "BLOCKED" and event.after["new_violations"] == 1
    message = OutboxMessage.objects.get(task_name="compliance.notify_run")
    assert message.kwargs["opened"] == {"R01": 1}


def test_another_tenants_pull_request_is_not_found(post_run, other_tenant, make_token, api):
    post_run(native(results=[violation("R01")]))
    theirs = api(make_token(other_tenant, Role.VIEWER))
    response = theirs.get("/api/v1/compliance/gate?repository=acme/web&pr=1")
    assert response.status_code == 404


def test_posting_to_another_tenants_repository_name_creates_a_separate_pull_request(
    post_run, other_tenant, make_token, api
):
    post_run(native(results=[violation("R01")]))
    theirs = api(make_token(other_tenant, Role.CI))
    body = post_run(native(results=[passed("R01")]), client=theirs).json()
    assert body["decision"] == "PASS", "the other tenant's violations are invisible here"
    assert PullRequest.objects.count() == 2


def test_absolute_sarif_paths_become_repository_relative(post_run, tenant):
    _map(tenant, "ruff", "*", "R19")
    on_runner = sarif_result("F401", path="file:///home/runner/work/web/web/src/app.py")
    elsewhere = sarif_result("E501", path="file:///builds/ci/src/long.py")
    document = sarif([on_runner, elsewhere])
    response = post_run(document, content_type="application/sarif+json", query=SARIF_QUERY)
    assert response.status_code == 201, response.content
    paths = set(Violation.objects.values_list("file_path", flat=True))
    assert paths == {"src/app.py", "/builds/ci/src/long.py"}
    annotations = response.json()["check_run"]["output"]["annotations"]
    assert {a["path"] for a in annotations} == paths
    Violation.objects.all().delete()
    CheckResult.objects.all().delete()
    CheckRun.objects.all().delete()
    rooted = post_run(
        document,
        content_type="application/sarif+json",
        query=SARIF_QUERY + "&source_root=/builds/ci",
    )
    assert rooted.status_code == 201
    assert set(Violation.objects.values_list("file_path", flat=True)) == {
        "src/app.py",
        "src/long.py",
    }
