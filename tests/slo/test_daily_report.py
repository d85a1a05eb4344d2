"""The daily report: content for a fixed data set, DST days in America/Edmonton, idempotent
rebuilds, evidence, sending once at 09:00 local, and the management command."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from apps.alerts import payloads
from apps.alerts.models import Channel, Delivery, Digest
from apps.alerts.services import save_channel
from apps.audit.models import EvidenceArtifact
from apps.slo import reports
from apps.slo.ingest import Row
from apps.slo.models import DailyReport
from tests.slo.conftest import record

EDMONTON = ZoneInfo("America/Edmonton")
DAY = date(2026, 11, 10)  # a 24-hour day, UTC-7


def _day_rows(day: date, per_minute=None) -> list[Row]:
    start = datetime(day.year, day.month, day.day, tzinfo=EDMONTON).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), EDMONTON)
    rows, minute, index = [], start, 0
    while minute < end.astimezone(UTC):
        rows.append(per_minute(index, minute))
        minute += timedelta(minutes=1)
        index += 1
    return rows


@pytest.fixture
def checkout(tenant, make_service, make_slo):
    service = make_service(
        tenant,
        display_name="Checkout API",
        report_ratios=[{"name": "STP rate", "good": "stp_success", "total": "stp_total"}],
        counter_aggregates={"open_tickets": "last", "csat": "mean"},
    )
    make_slo(service)
    return service


def _fixed_day(tenant, day=DAY):
    def row(index, minute):
        first_hour = index < 60
        return Row(
            service="checkout",
            route="/pay",
            version="",
            minute=minute,
            requests=100,
            errors=1 if first_hour else 0,
            buckets={"100": 80, "300": 99, "+Inf": 100},
            counters={
                "stp_success": 9,
                "stp_total": 10,
                "open_tickets": 4 if index == 1439 else 3,
                "csat": 4.5,
                "invoices": 2,
            },
            error_samples=(
                [{"fingerprint": "timeout", "message": "TimeoutError: payments", "count": 1}]
                if first_hour
                else []
            ),
        )

    record(tenant, _day_rows(day, row))


def test_report_content_for_a_fixed_day(tenant, checkout):
    _fixed_day(tenant)
    content = reports.build(tenant, DAY)
    assert (content["date"], content["time_zone"], content["hours"]) == (
        "2026-11-10",
        "America/Edmonton",
        24,
    )
    (service,) = content["services"]
    assert (service["requests"], service["errors"]) == (144_000, 60)
    assert service["availability"] == pytest.approx(1 - 60 / 144_000, abs=1e-6)
    assert service["error_ratio"] == pytest.approx(60 / 144_000, abs=1e-6)
    assert service["p50_ms"] == pytest.approx(62.5)  # 72,000 of 115,200 under 100 ms
    assert service["p95_ms"] == pytest.approx(100 + 200 * 21_600 / 27_360, abs=1e-3)
    assert service["ratios"] == [
        {"name": "STP rate", "good": 12_960, "total": 14_400, "value": 0.9}
    ]
    assert service["volumes"] == [
        {"name": "invoices", "value": 2880},
        {"name": "stp_success", "value": 12_960},
        {"name": "stp_total", "value": 14_400},
    ]
    assert service["support"] == [
        {"name": "csat", "value": 4.5, "aggregate": "mean"},
        {"name": "open_tickets", "value": 4, "aggregate": "last"},
    ]
    assert service["top_errors"] == [
        {"fingerprint": "timeout", "message": "TimeoutError: payments", "count": 60}
    ]
    assert [h["hour"] for h in service["hourly"]][:2] == ["00:00", "01:00"]
    assert service["hourly"][0]["errors"] == 60 and service["hourly"][1]["errors"] == 0
    (slo,) = service["slos"]
    assert slo["day_sli"] == pytest.approx(1 - 60 / 144_000, abs=1e-6)
    assert slo["budget_remaining"] == pytest.approx(1 - (60 / 144_000) / 0.001, abs=1e-4)
    assert slo["status"] == "ok"
    assert content["totals"] == {
        "services": 1,
        "slos": 1,
        "slos_ok": 1,
        "slos_at_risk": 0,
        "slos_exhausted": 0,
        "slos_no_data": 0,
    }


@pytest.mark.parametrize(
    ("day", "hours", "repeated"),
    [(date(2026, 11, 1), 25, "01:00 (2)"), (date(2026, 3, 8), 23, None)],
)
def test_dst_days_have_23_or_25_hours(tenant, checkout, day, hours, repeated):
    record(
        tenant,
        _day_rows(
            day,
            lambda index, minute: Row("checkout", "", "", minute, 10, 0),
        ),
    )
    content = reports.build(tenant, day)
    service = content["services"][0]
    assert content["hours"] == hours
    assert len(service["hourly"]) == hours
    assert service["requests"] == hours * 60 * 10  # every minute of the local day, no more
    labels = [h["hour"] for h in service["hourly"]]
    if repeated:
        assert labels[1:3] == ["01:00", repeated]
    else:
        assert "02:00" not in labels  # 02:00 does not exist on the spring-forward day


def test_rebuild_is_idempotent_and_keeps_evidence(tenant, checkout):
    _fixed_day(tenant)
    first, changed = reports.generate(tenant, DAY)
    assert changed and first.evidence.sha256 and first.evidence.kind == "slo.daily_report"
    again, changed_again = reports.generate(tenant, DAY)
    assert not changed_again and again.pk == first.pk and again.sha256 == first.sha256
    assert EvidenceArtifact.objects.filter(kind="slo.daily_report").count() == 1
    # late data for that day changes the content: a new evidence artifact, same report row
    record(tenant, [Row("checkout", "/late", "", datetime(2026, 11, 10, 12, tzinfo=UTC), 5, 5)])
    rebuilt, changed = reports.generate(tenant, DAY)
    assert changed and rebuilt.pk == first.pk and rebuilt.sha256 != first.sha256
    assert EvidenceArtifact.objects.filter(kind="slo.daily_report").count() == 2


def test_sent_once_at_nine_local_with_html_email_and_slack(tenant, checkout):
    email, _ = save_channel(
        Channel(tenant=tenant, name="email", kind="email", emails="sre@example.com")
    )
    yesterday = DAY
    _fixed_day(tenant, yesterday)
    before_nine = datetime(2026, 11, 11, 8, 59, tzinfo=EDMONTON)
    assert reports.run_due(now=before_nine) == 0
    assert not DailyReport.objects.exists()
    after_nine = datetime(2026, 11, 11, 9, 5, tzinfo=EDMONTON)
    assert reports.run_due(now=after_nine) == 1
    assert reports.run_due(now=after_nine + timedelta(minutes=15)) == 0  # once per day
    report = DailyReport.objects.get(date=yesterday)
    assert report.sent_at is not None
    digest = Digest.objects.get(kind="report")
    assert digest.period_key == "slo-report:2026-11-10"
    delivery = Delivery.objects.get(digest=digest, channel=email)
    outgoing = payloads.build(delivery)
    assert outgoing.subject == "[opsportal] Daily SLO report 2026-11-10"
    assert "Checkout API" in outgoing.html and "<table" in outgoing.html
    assert "99.958 %" in outgoing.text
    slack = payloads.slack_body(payloads._message(delivery))
    assert "Daily SLO report" in slack["text"]
    assert any("Checkout API" in b.get("text", {}).get("text", "") for b in slack["blocks"])


def test_slo_report_command_rebuilds_idempotently(tenant, checkout, capsys):
    _fixed_day(tenant)
    call_command("slo_report", "--date", "2026-11-10", "--tenant", "acme")
    call_command("slo_report", "--date", "2026-11-10", "--tenant", "acme")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("acme 2026-11-10: rebuilt (content changed)")
    assert out[1].startswith("acme 2026-11-10: unchanged")
    assert DailyReport.objects.count() == 1


def test_admin_shows_the_report_with_svg_charts(tenant, checkout, admin_client_for):
    _fixed_day(tenant)
    report, _ = reports.generate(tenant, DAY)
    client = admin_client_for(tenant)
    page = client.get(f"/admin/slo/dailyreport/{report.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Checkout API" in body and "<svg" in body and "99.958 %" in body


def test_half_hour_zone_counts_each_rollup_hour_in_the_day_it_starts(tenant, checkout):
    tenant.time_zone = "Asia/Kolkata"  # UTC+05:30
    tenant.save()
    day = date(2026, 11, 10)
    zone = ZoneInfo("Asia/Kolkata")
    start = datetime(2026, 11, 10, tzinfo=zone).astimezone(UTC) - timedelta(hours=1)
    record(
        tenant,
        [Row("checkout", "", "", start + timedelta(minutes=i), 10, 0) for i in range(26 * 60)],
    )
    content = reports.build(tenant, day)
    service = content["services"][0]
    assert content["hours"] == 24
    assert service["hourly"][0]["hour"] == "00:30"  # the UTC hour 19:00 starts at 00:30 local
    assert service["requests"] == 24 * 60 * 10
