"""SLO reads, service creation, OpenSLO import/export through the API and manage.py, and the
admin pages (per-route table, SLO form validation)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command

from apps.slo import alerting
from apps.slo.models import SLO, Service, SLIPoint
from apps.tenancy.roles import Role
from tests.slo.conftest import minute_floor, record, rows_of

OPENSLO = """\
apiVersion: openslo/v1
kind: Service
metadata: {name: payments, displayName: Payments API}
spec: {description: Takes the money}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: payments-latency, displayName: Payments fast enough}
spec:
  service: payments
  indicator:
    metadata: {name: payments-latency-sli}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource: {type: opsportal, spec: {metric: requests_faster_than, thresholdMs: 300}}
        total: {metricSource: {type: opsportal, spec: {metric: requests}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: payments-page}
spec: {conditions: []}
"""


@pytest.fixture
def operator(api, make_token, tenant):
    return api(make_token(tenant, Role.OPERATOR))


def test_slo_list_and_detail_carry_budget_and_burn_rates(
    api, make_token, tenant, make_service, make_slo
):
    slo = make_slo(make_service(tenant))
    end = minute_floor() - timedelta(minutes=1)
    record(tenant, rows_of("checkout", end - timedelta(minutes=60), 60, 2000, 1))
    alerting.evaluate(now=end + timedelta(seconds=60))
    viewer = api(make_token(tenant, Role.VIEWER))
    listed = viewer.get("/api/v1/slo/slos").json()["results"]
    assert [s["name"] for s in listed] == ["checkout-availability"]
    detail = viewer.get(f"/api/v1/slo/slos/{slo.name}").json()
    assert detail["status"]["budget_status"] == "ok"
    assert detail["status"]["burn_rates"]["1h"] == pytest.approx(0.5)
    assert detail["status"]["budget_remaining"] == pytest.approx(0.5)
    budget = detail["status"]["budget"]
    assert budget["events"] == 120_000 and budget["bad_events"] == 60
    assert budget["allowed_bad_events"] == pytest.approx(120)
    assert budget["consumed"] == pytest.approx(0.5)
    assert viewer.get("/api/v1/slo/slos/nope").status_code == 404


def test_openslo_import_reports_unsupported_and_export_round_trips(operator, tenant):
    response = operator.post("/api/v1/slo/openslo", OPENSLO, content_type="application/yaml")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["services_created"] == ["payments"]
    assert body["slos_created"] == ["payments-latency"]
    assert [p["kind"] for p in body["unsupported"]] == ["AlertPolicy"]
    slo = SLO.objects.get(name="payments-latency")
    assert (slo.sli_type, slo.latency_threshold_ms, slo.window_days) == ("latency", 300.0, 28)
    assert float(slo.objective_percent) == 99.0
    exported = operator.get("/api/v1/slo/openslo")
    assert exported["Content-Type"] == "application/yaml"
    again = operator.post(
        "/api/v1/slo/openslo", exported.content, content_type="application/yaml"
    ).json()
    assert again["slos_updated"] == ["payments-latency"] and again["unsupported"] == []


def test_openslo_bad_input_imports_nothing(operator, tenant):
    broken = OPENSLO.replace("target: 0.99", "target: 1.5").replace(
        "openslo/v1\nkind: Service", "openslo/v1alpha\nkind: Service"
    )
    response = operator.post("/api/v1/slo/openslo", broken, content_type="application/yaml")
    assert response.status_code == 400
    assert len(response.json()["errors"]) == 2
    assert not Service.objects.exists() and not SLO.objects.exists()
    assert (
        operator.post("/api/v1/slo/openslo", "{}", content_type="application/json").status_code
        == 415
    )


def test_import_openslo_command_with_dry_run(tenant, tmp_path, capsys):
    path = tmp_path / "slos.yaml"
    path.write_text(OPENSLO)
    call_command("import_openslo", str(path), "--tenant", "acme", "--dry-run")
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] and report["slos_created"] == ["payments-latency"]
    assert not SLO.objects.exists()
    call_command("import_openslo", str(path), "--tenant", "acme")
    assert SLO.objects.get().name == "payments-latency"
    call_command("export_openslo", "--tenant", "acme")
    assert "name: payments-latency" in capsys.readouterr().out


def test_new_slo_is_judged_on_data_already_there(tenant, make_service, make_slo):
    service = make_service(tenant)
    end = minute_floor() - timedelta(minutes=1)
    record(tenant, rows_of("checkout", end - timedelta(minutes=30), 30, 100, 1))
    slo = make_slo(service)
    hour_points = SLIPoint.objects.filter(slo=slo, resolution="m")
    assert hour_points.count() == 30
    assert sum(p.total for p in hour_points) == 3000


def test_service_creation_validates_report_settings(operator, tenant):
    bad = operator.post(
        "/api/v1/slo/services",
        {"name": "billing", "counter_aggregates": {"csat": "median"}},
        format="json",
    )
    assert bad.status_code == 400
    assert "counter_aggregates" in bad.json()["errors"]
    good = operator.post(
        "/api/v1/slo/services",
        {"name": "billing", "canary_policy": {"max_p95_ms": 500}},
        format="json",
    )
    assert good.status_code == 201
    assert (
        operator.post("/api/v1/slo/services", {"name": "billing"}, format="json").status_code == 422
    )


def test_admin_route_page_and_slo_form_validation(tenant, make_service, make_slo, admin_client_for):
    service = make_service(tenant)
    end = minute_floor() - timedelta(minutes=1)
    buckets = {"100": 90, "400": 100, "+Inf": 100}
    record(
        tenant,
        rows_of("checkout", end - timedelta(minutes=30), 30, 100, 2, route="/pay", buckets=buckets),
    )
    client = admin_client_for(tenant)
    page = client.get(f"/admin/slo/service/{service.pk}/routes/").content.decode()
    assert "/pay" in page and "2.000 %" in page and "3,000" in page
    response = client.post(
        "/admin/slo/slo/add/",
        {
            "tenant": tenant.pk,
            "service": service.pk,
            "name": "checkout-latency",
            "sli_type": "latency",
            "objective_percent": "99.5",
            "window_days": 30,
            "min_events": 100,
            "alerting": "{}",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "A latency SLO needs a threshold in ms." in response.content.decode()
    assert not SLO.objects.exists()
