"""Reads (rules, violations, gate, trends, export), the jobs (alerts, trends, retention), the
catalog loader, and the dashboard's fixed query budget."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.alerts.models import Alert, AlertStatus
from apps.audit.models import AuditEvent
from apps.compliance import services, trends
from apps.compliance.models import CheckResult, Rule, RuleTrend, Violation, ViolationStatus
from apps.compliance.rule_catalog import CatalogError
from apps.core.models import OutboxMessage
from apps.tenancy.roles import Role
from tests.compliance.conftest import native, passed, violation

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(tenant, make_token, api):
    return api(make_token(tenant, Role.VIEWER))


@pytest.fixture
def seeded(post_run, django_capture_on_commit_callbacks):
    """R01 red (BLOCK open), R19 yellow (WARNING open), R02 green, R25 resolved. Commit hooks
    run, as in production: "last checked" is recorded after commit."""
    with django_capture_on_commit_callbacks(execute=True):
        _seed(post_run)


def _seed(post_run):
    post_run(native(results=[violation("R25", path="CHANGELOG.md"), passed("R02")]))
    post_run(
        native(
            sha="b" * 40,
            results=[
                violation("R01", path="settings.py", message="AWS key"),
                violation("R19", path="src/a.py", message="unused import"),
                violation("R19", path="src/b.py", message="unused import"),
                passed("R02"),
                passed("R25"),
            ],
        )
    )
    post_run(native(repository="acme/api", pr=5, results=[violation("R19", path="api.py")]))


def test_rule_statuses_are_red_yellow_and_green_from_open_violations(seeded, reader):
    rules = {r["id"]: r for r in reader.get("/api/v1/compliance/rules").json()["rules"]}
    assert len(rules) == 25
    assert rules["R01"]["status"] == "red" and rules["R01"]["open"] == 1
    assert rules["R19"]["status"] == "yellow" and rules["R19"]["open"] == 3
    assert rules["R02"]["status"] == "green" and rules["R02"]["last_checked_at"]
    assert rules["R25"]["status"] == "green", "a resolved violation does not count"
    assert rules["R10"]["last_checked_at"] is None


def test_rule_detail_has_a_90_day_series_and_top_files(seeded, reader, tenant):
    trends.rebuild_day(tenant, timezone.now().date())
    detail = reader.get("/api/v1/compliance/rules/R19").json()
    assert len(detail["series"]) == 90
    assert detail["top_files"][0] == {"file_path": "api.py", "open": 1}
    assert reader.get("/api/v1/compliance/rules/R77").status_code == 404


def test_violation_filters_narrow_the_list_and_pages_use_a_cursor(seeded, reader):
    def ids(query):
        return [
            v["rule_id"]
            for v in reader.get(f"/api/v1/compliance/violations?{query}").json()["results"]
        ]

    assert sorted(ids("")) == ["R01", "R19", "R19", "R19"]
    assert ids("rule=R01") == ["R01"]
    assert ids("severity=BLOCK") == ["R01"]
    assert ids("repository=acme/api") == ["R19"]
    assert sorted(ids("pr=1&file=src/")) == ["R19", "R19"]
    assert ids("status=resolved") == ["R25"]
    page = reader.get("/api/v1/compliance/violations?page_size=2").json()
    assert len(page["results"]) == 2 and "cursor=" in page["next"]
    rest = reader.get(page["next"]).json()
    assert len(rest["results"]) == 2
    bad = reader.get("/api/v1/compliance/violations?severity=LOUD")
    assert bad.status_code == 400 and "severity" in bad.json()["errors"]


def test_the_gate_answers_304_to_a_matching_etag(seeded, reader):
    url = "/api/v1/compliance/gate?repository=acme/web&pr=1"
    first = reader.get(url)
    body = first.json()
    assert body["decision"] == "BLOCKED"
    assert {b["rule_id"] for b in body["breakdown"]} == {"R01", "R19"}
    assert body["open_violations_total"] == 3
    again = reader.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert reader.get(url, HTTP_IF_NONE_MATCH='"stale"').status_code == 200
    assert reader.get("/api/v1/compliance/gate?repository=bad").status_code == 400


def test_trends_rebuild_a_day_idempotently_and_sum_rules_by_counts(seeded, reader, tenant):
    today = timezone.localtime().date()
    from apps.compliance.selectors import today_for

    today = today_for(tenant)
    assert trends.rebuild_day(tenant, today) == 4
    first = list(RuleTrend.objects.order_by("rule_id").values_list("rule_id", "evaluated"))
    assert trends.rebuild_day(tenant, today) == 4
    assert list(RuleTrend.objects.order_by("rule_id").values_list("rule_id", "evaluated")) == first
    r19 = RuleTrend.objects.get(rule_id="R19")
    assert (r19.evaluated, r19.passing, r19.violations) == (3, 0, 3)
    series = reader.get(
        f"/api/v1/compliance/trends?from={today - timedelta(days=2)}&to={today}"
    ).json()["series"]
    assert [p["evaluated"] for p in series] == [0, 0, 8]
    assert series[-1]["compliance_rate"] == round(3 / 8, 4)
    one = reader.get(f"/api/v1/compliance/trends?rule=R02&from={today}&to={today}").json()
    assert one["series"][0]["compliance_rate"] == 1.0
    bad = reader.get("/api/v1/compliance/trends?from=2026-13-01")
    assert bad.status_code == 400 and "from" in bad.json()["errors"]


def test_export_streams_csv_and_json_with_the_same_filters(seeded, reader):
    response = reader.get("/api/v1/compliance/export?format=csv&rule=R19")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["rule_id"] for r in rows] == ["R19", "R19", "R19"]
    as_json = reader.get("/api/v1/compliance/export?format=json&severity=BLOCK")
    data = json.loads(b"".join(as_json.streaming_content))
    assert [r["rule_id"] for r in data] == ["R01"]
    assert reader.get("/api/v1/compliance/export?format=xml").status_code == 400


def test_csv_export_defuses_spreadsheet_formulas(post_run, reader):
    post_run(native(results=[violation("R19", message='=HYPERLINK("http://evil","x")')]))
    response = reader.get("/api/v1/compliance/export?format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0]["message"] == '\'=HYPERLINK("http://evil","x")'


def test_new_violations_raise_alerts_by_tier_and_clearing_resolves_them(post_run, tenant):
    from apps.compliance.tasks import notify_run

    post_run(native(results=[violation("R01"), violation("R09"), violation("R19")]))
    message = OutboxMessage.objects.get(task_name="compliance.notify_run")
    notify_run(**message.kwargs)
    alerts = {a.dedup_key: a.tier for a in Alert.objects.all()}
    assert alerts == {
        "compliance:acme/web#1:R01": 1,
        "compliance:acme/web#1:R09": 2,
        "compliance:acme/web#1:R19": 3,
    }
    notify_run(**message.kwargs)
    assert Alert.objects.get(dedup_key="compliance:acme/web#1:R01").count == 2, "deduplicated"
    post_run(native(sha="b" * 40, results=[violation("R09"), violation("R19")]))
    cleared = OutboxMessage.objects.filter(task_name="compliance.notify_run").latest("id")
    notify_run(**cleared.kwargs)
    assert Alert.objects.get(dedup_key="compliance:acme/web#1:R01").status == AlertStatus.RESOLVED
    assert Alert.objects.get(dedup_key="compliance:acme/web#1:R09").status != AlertStatus.RESOLVED


def test_retention_deletes_old_resolved_violations_and_old_trends_only(seeded, tenant):
    now = timezone.now()
    Violation.objects.filter(status=ViolationStatus.RESOLVED).update(
        resolved_at=now - timedelta(days=91)
    )
    RuleTrend.objects.create(tenant=tenant, rule_id="R01", day=(now - timedelta(days=400)).date())
    RuleTrend.objects.create(tenant=tenant, rule_id="R01", day=(now - timedelta(days=300)).date())
    from apps.privacy import retention

    run = retention.enforce(tenant, now=now)  # the portal's one retention mechanism
    policies = run.report["policies"]
    purged = {k: policies[k]["rows"] for k in ("resolved-violations", "compliance-trends")}
    assert purged == {"resolved-violations": 1, "compliance-trends": 1}
    assert not Violation.objects.filter(status=ViolationStatus.RESOLVED).exists()
    assert Violation.objects.filter(status=ViolationStatus.OPEN).count() == 4
    assert RuleTrend.objects.count() == 1
    assert CheckResult.objects.exists(), "run history is kept"


def test_load_rules_is_idempotent_audits_tier_changes_and_never_deletes(tmp_path):
    from apps.compliance.rule_catalog import DEFAULT_CATALOG

    assert Rule.objects.count() == 25, "the data migration loaded the default catalog"
    report = services.load_rules(DEFAULT_CATALOG)
    assert (len(report.created), len(report.updated), len(report.unchanged)) == (0, 0, 25)
    text = DEFAULT_CATALOG.read_text()
    start = text.index("id: R19")
    changed = text[:start] + text[start:].replace("tier: WARNING", "tier: OVERRIDE", 1)
    one_rule = tmp_path / "rules.yaml"
    one_rule.write_text(changed)
    report = services.load_rules(one_rule)
    assert report.updated == ["R19"]
    assert Rule.objects.get(pk="R19").tier == "OVERRIDE"
    event = AuditEvent.objects.filter(target_type="compliance.rule", target_id="R19").latest("id")
    assert (event.before["tier"], event.after["tier"]) == ("WARNING", "OVERRIDE")
    partial = tmp_path / "partial.yaml"
    partial.write_text(
        "version: 1\nrules:\n  - {id: R01, slug: s, name: Renamed, tier: BLOCK, "
        "category: security}\n"
    )
    services.load_rules(partial)
    assert Rule.objects.count() == 25, "rules missing from a file are kept"
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrules:\n  - {id: X1, tier: LOUD}\n")
    with pytest.raises(CatalogError, match=r"rules\[0\]\.id"):
        services.load_rules(broken)


def _dashboard_queries(client) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/compliance/")
    assert response.status_code == 200
    return len(queries), len(response.content)


def test_dashboard_query_count_is_fixed_and_within_budget(admin_client_for, tenant, post_run):
    client = admin_client_for(tenant)
    post_run(native(results=[violation("R01"), passed("R02")]))
    small, _ = _dashboard_queries(client)
    for pr in range(2, 12):
        post_run(
            native(
                pr=pr,
                results=[violation(f"R{n:02d}", path=f"f{pr}.py") for n in range(1, 26)],
            )
        )
    for offset in range(30):
        trends.rebuild_day(tenant, timezone.now().date() - timedelta(days=offset))
    large, _ = _dashboard_queries(client)
    assert large == small, "the query count does not grow with the data"
    assert large <= 15, large


def test_the_gate_answer_is_cached_as_a_run_or_an_override_request_commits(
    post_run, tenant, reader, make_token, api, django_capture_on_commit_callbacks
):
    from apps.compliance import selectors

    with django_capture_on_commit_callbacks(execute=True):
        post_run(native(results=[violation("R01"), passed("R02")]))
    cached = selectors.cached_gate(tenant, "acme/web", 1)
    assert cached and cached.body["decision"] == "BLOCKED", "written through, not on first read"
    polled = reader.get("/api/v1/compliance/gate?repository=acme/web&pr=1")
    assert polled["ETag"] == cached.etag and polled.content == cached.rendered

    developer = api(make_token(tenant, Role.VIEWER))
    with django_capture_on_commit_callbacks(execute=True):
        requested = developer.post(
            "/api/v1/overrides",
            {"violation": Violation.objects.get().pk, "reason": "A false positive: test fixture."},
            format="json",
        )
    assert requested.status_code == 201, requested.content
    cached = selectors.cached_gate(tenant, "acme/web", 1)
    assert cached and [o["state"] for o in cached.body["overrides"]] == ["PENDING"]

    with django_capture_on_commit_callbacks(execute=True):
        post_run(native(sha="b" * 40, results=[passed("R01"), passed("R02")]))
    cached = selectors.cached_gate(tenant, "acme/web", 1)
    assert cached and cached.body["decision"] == "PASS" and cached.body["head_sha"] == "b" * 40


@pytest.mark.parametrize(
    "params",
    [
        {"repository": "acme/shop", "pr": "12"},
        {"repository": "acme/shop", "pr": "12", "commit_sha": "ABCDEF1"},
        {"repository": " acme/shop ", "pr": " 12 "},
        {"repository": "acme/shop", "pr": "12.0"},
        {"repository": "acme/shop", "pr": "0"},
        {"repository": "acme/shop", "pr": "-3"},
        {"repository": "acme/shop", "pr": "١٢"},
        {"repository": "acme", "pr": "12"},
        {"repository": "acme/shop\n", "pr": "12"},
        {"repository": "acme/shop", "pr": "12", "commit_sha": "xyz"},
        {"pr": "12"},
        {"repository": "acme/shop"},
        {"repository": "acme/shop", "pr": "2147483647"},
        {"repository": "acme/shop", "pr": "2147483648"},
        {"repository": "acme/shop", "pr": "00000000012"},
        {"repository": "acme/shop", "pr": "9" * 1001},
        {"repository": "acme/shop", "pr": "9" * 5000},
        QueryDict("repository=acme/old&repository=acme/shop&pr=7&pr=8"),
    ],
)
def test_gate_query_reads_exactly_what_the_serializer_accepts(params):
    """The gate's direct read of a plain query and GateQuery agree on every input: the same
    values, or the same validation errors."""
    from rest_framework.exceptions import ValidationError

    from apps.compliance.api import GateQuery, gate_query

    serializer = GateQuery(data=params)
    if serializer.is_valid():
        data = serializer.validated_data
        assert gate_query(params) == (data["repository"], data["pr"], data.get("commit_sha", ""))
    else:
        with pytest.raises(ValidationError) as raised:
            gate_query(params)
        assert raised.value.detail == serializer.errors
