"""Rendering of the daily SLO report: email (HTML and text), Slack, SVG charts, admin page.

Pure tests: no database. The report dicts are fixed; figures are asserted as exact strings.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET

import pytest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from apps.slo import report_render as rr

EVIL = "<script>alert('x')</script>"
EVIL_HTML = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
EVIL_SLACK = "&lt;script&gt;alert('x')&lt;/script&gt;"
NS = {"svg": "http://www.w3.org/2000/svg"}


def hours(n: int = 24) -> list[str]:
    labels = [f"{h:02d}:00" for h in range(24)]
    if n == 25:  # the autumn DST change: 01:00 happens twice
        labels.insert(2, "01:00 (2)")
    elif n == 23:  # spring: no 02:00
        labels.remove("02:00")
    return labels


def checkout(n_hours: int = 24) -> dict:
    return {
        "name": "checkout",
        "display_name": "Checkout API",
        "requests": 1234567,
        "errors": 321,
        "availability": 0.99974,
        "error_ratio": 0.00026,
        "p50_ms": 41.2,
        "p95_ms": 180.5,
        "p99_ms": 420.0,
        "hourly": [
            {"hour": h, "requests": 12000 + i, "errors": 3 if i != 5 else 0, "p95_ms": 170.2}
            for i, h in enumerate(hours(n_hours))
        ],
        "ratios": [{"name": "STP rate", "good": 9120, "total": 9800, "value": 0.9306}],
        "volumes": [{"name": "invoices", "value": 9800}],
        "support": [
            {"name": "open_tickets", "value": 14, "aggregate": "last"},
            {"name": "csat", "value": 4.6, "aggregate": "mean"},
        ],
        "top_errors": [
            {"fingerprint": "a1b2c3", "message": "TimeoutError: upstream payments", "count": 210},
            {"fingerprint": "d4e5f6", "message": "ValueError: " + "x" * 300, "count": 1111},
        ],
        "slos": [
            {
                "name": "checkout-availability",
                "display_name": "Checkout availability",
                "sli_type": "availability",
                "objective_percent": 99.9,
                "window_days": 30,
                "day_sli": 0.99974,
                "budget_remaining": 0.62,
                "status": "ok",
            },
            {
                "name": "checkout-latency",
                "display_name": "Checkout latency",
                "sli_type": "latency",
                "objective_percent": 99.5,
                "window_days": 28,
                "day_sli": 0.9931,
                "budget_remaining": 0.18,
                "status": "at_risk",
            },
            {
                "name": "checkout-errors",
                "display_name": "Checkout errors",
                "sli_type": "availability",
                "objective_percent": 99.95,
                "window_days": 30,
                "day_sli": 0.9981,
                "budget_remaining": -0.125,
                "status": "exhausted",
            },
        ],
    }


def ledger(n_hours: int = 24) -> dict:
    """A service without traffic: every figure None."""
    return {
        "name": "ledger",
        "display_name": "Ledger",
        "requests": 0,
        "errors": 0,
        "availability": None,
        "error_ratio": None,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "hourly": [{"hour": h, "requests": 0, "errors": 0, "p95_ms": None} for h in hours(n_hours)],
        "ratios": [{"name": "matched", "good": 0, "total": 0, "value": None}],
        "volumes": [],
        "support": [],
        "top_errors": [],
        "slos": [
            {
                "name": "ledger-availability",
                "display_name": "Ledger availability",
                "sli_type": "availability",
                "objective_percent": 99.9,
                "window_days": 30,
                "day_sli": None,
                "budget_remaining": None,
                "status": "no_data",
            }
        ],
    }


def make_report(n_hours: int = 24) -> dict:
    return {
        "tenant": "acme",
        "tenant_name": "Acme Corp",
        "date": "2026-11-22",
        "time_zone": "America/Edmonton",
        "hours": n_hours,
        "generated_at": "2026-11-23T16:00:03+00:00",
        "url": "https://portal.example/admin/slo/dailyreport/12/",
        "services": [checkout(n_hours), ledger(n_hours)],
        "totals": {
            "services": 2,
            "slos": 4,
            "slos_ok": 1,
            "slos_at_risk": 1,
            "slos_exhausted": 1,
            "slos_no_data": 1,
        },
    }


def evil_report() -> dict:
    report = make_report()
    report["tenant_name"] = EVIL
    svc = report["services"][0]
    svc["display_name"] = EVIL
    svc["top_errors"][0]["message"] = EVIL
    svc["slos"][1]["display_name"] = EVIL
    svc["ratios"][0]["name"] = EVIL
    return report


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """No manifest needed for {% static %}: these tests render templates, not serve files."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


# --- formatting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (0.99974, 3, "99.974 %"),
        (0.00026, 3, "0.026 %"),
        (1.0, 3, "100.000 %"),
        (0.0, 3, "0.000 %"),
        (0.62, 1, "62.0 %"),
        (-0.125, 1, "-12.5 %"),
        (-0.0001, 1, "0.0 %"),
        (0.9306, 2, "93.06 %"),
        (0.9999999, 3, "> 99.999 %"),
        (0.0000001, 3, "< 0.001 %"),
        (None, 3, "—"),
        (float("nan"), 3, "—"),
        ("n/a", 3, "—"),
    ],
)
def test_fmt_percent(value, decimals, expected):
    assert rr.fmt_percent(value, decimals) == expected


def test_number_formats():
    assert rr.fmt_int(1234567) == "1,234,567"
    assert rr.fmt_int(0) == "0"
    assert rr.fmt_int(None) == "—"
    assert rr.fmt_ms(180.5) == "180.5 ms"
    assert rr.fmt_ms(420.0) == "420 ms"
    assert rr.fmt_ms(1234.56) == "1,234.6 ms"
    assert rr.fmt_ms(None) == "—"
    assert rr.fmt_number(4.6) == "4.6"
    assert rr.fmt_number(9800) == "9,800"
    assert rr.fmt_number(float("inf")) == "—"
    assert rr.truncate("a\n   b") == "a b"
    assert rr.truncate("x" * 300) == "x" * 199 + "…"
    assert len(rr.truncate("y" * 201)) == 200


def test_display():
    d = rr.display(make_report())
    assert d["heading"] == "Daily SLO report — acme — 2026-11-22"
    assert d["summary"] == "4 SLOs: 1 ok, 1 at risk, 1 exhausted, 1 no data"
    assert d["generated_display"] == "2026-11-23 16:00 UTC"
    assert d["day_note"] == ""
    assert d["link"] == "https://portal.example/admin/slo/dailyreport/12/"
    svc, quiet = d["services"]
    assert svc["availability_display"] == "99.974 %"
    assert svc["error_ratio_display"] == "0.026 %"
    assert svc["requests_display"] == "1,234,567"
    assert (svc["p50_display"], svc["p95_display"], svc["p99_display"]) == (
        "41.2 ms",
        "180.5 ms",
        "420 ms",
    )
    figures = {f["label"]: f["value"] for f in svc["figures"]}
    assert figures["STP rate"] == "93.06 % (9,120 / 9,800)"
    assert figures["invoices"] == "9,800"
    assert figures["open_tickets (last)"] == "14"
    assert figures["csat (mean)"] == "4.6"
    slos = {s["name"]: s for s in svc["slos"]}
    assert slos["checkout-availability"]["objective_display"] == "99.9 %"
    assert slos["checkout-availability"]["window_display"] == "30 d"
    assert slos["checkout-availability"]["budget_display"] == "62.0 %"
    assert slos["checkout-errors"]["budget_display"] == "-12.5 %"
    assert slos["checkout-errors"]["objective_display"] == "99.95 %"
    assert [s["status_label"] for s in svc["slos"]] == ["OK", "At risk", "Exhausted"]
    assert quiet["no_traffic"] is True
    assert quiet["availability_display"] == "—"
    assert quiet["p95_display"] == "—"
    assert {f["label"]: f["value"] for f in quiet["figures"]}["matched"] == "— (0 / 0)"
    assert quiet["slos"][0]["status_label"] == "No data"
    assert quiet["slos"][0]["day_sli_display"] == "—"
    # The raw keys stay: display() output is a superset of the report.
    assert svc["availability"] == 0.99974
    assert d["totals"]["slos"] == 4


def test_display_dst_and_unsafe_url():
    report = make_report(25)
    report["url"] = "javascript:alert(1)"
    d = rr.display(report)
    assert d["day_note"] == "25-hour day (daylight saving time change)"
    assert d["link"] == ""
    assert rr.display(make_report(23))["day_note"] == "23-hour day (daylight saving time change)"


# --- email --------------------------------------------------------------------------------------


def test_email_html():
    html = rr.email_html(make_report())
    assert html.startswith("<!DOCTYPE html>")
    assert html.endswith("</html>")
    assert "<h1" in html
    assert ">Daily SLO report — acme — 2026-11-22</h1>" in html
    assert "<strong>4 SLOs: 1 ok, 1 at risk, 1 exhausted, 1 no data</strong>" in html
    assert 'href="https://portal.example/admin/slo/dailyreport/12/"' in html
    for text in (
        ">99.974 %<",
        ">1,234,567<",
        ">180.5 ms<",
        ">0.026 %<",
        ">93.06 % (9,120 / 9,800)<",
        ">open_tickets (last)<",
        ">4.6<",
        ">TimeoutError: upstream payments<",
        ">1,111<",
        "No traffic on this day.",
        ">OK</span>",
        ">At risk</span>",
        ">Exhausted</span>",
        ">No data</span>",
        ">-12.5 %<",
    ):
        assert text in html, text
    assert ">—<" in html  # the quiet service's figures
    assert "ValueError: " + "x" * 187 + "…<" in html  # 200 characters with the ellipsis
    assert "x" * 188 not in html
    for forbidden in ("<script", "<img", "<link", "src=", "url("):
        assert forbidden not in html


def test_email_html_escapes_and_skips_unsafe_link():
    report = evil_report()
    report["url"] = 'javascript:alert("x")'
    html = rr.email_html(report)
    assert "<script" not in html
    assert f">{EVIL_HTML} <span" in html  # the service heading
    assert f">{EVIL_HTML}</code>" in html  # the error message
    assert "javascript:" not in html
    assert "<a " not in html


def test_email_text():
    text = rr.email_text(make_report())
    lines = text.splitlines()
    assert lines[0] == "Daily SLO report — acme — 2026-11-22"
    assert lines[1] == "Acme Corp · America/Edmonton · generated 2026-11-23 16:00 UTC"
    assert lines[3] == "4 SLOs: 1 ok, 1 at risk, 1 exhausted, 1 no data"
    assert "Report: https://portal.example/admin/slo/dailyreport/12/" in lines
    assert "== Checkout API (checkout) ==" in lines
    assert "  Availability         99.974 %" in lines
    assert "  Requests             1,234,567" in lines
    assert "  Latency p95          180.5 ms" in lines
    assert "  STP rate             93.06 % (9,120 / 9,800)" in lines
    assert (
        "    [AT RISK] Checkout latency: objective 99.5 % over 28 d, day SLI 99.310 %, "
        "budget left 18.0 %" in lines
    )
    assert (
        "    [EXHAUSTED] Checkout errors: objective 99.95 % over 30 d, day SLI 99.810 %, "
        "budget left -12.5 %" in lines
    )
    assert "    210x TimeoutError: upstream payments" in lines
    assert "== Ledger (ledger) ==" in lines
    assert "  No traffic on this day." in lines
    assert "  Availability  —" in lines
    assert (
        "    [NO DATA] Ledger availability: objective 99.9 % over 30 d, day SLI —, "
        "budget left —" in lines
    )


# --- Slack --------------------------------------------------------------------------------------


def test_slack_summary():
    headline, lines = rr.slack_summary(make_report())
    assert headline == ("Daily SLO report acme 2026-11-22: 1 ok, 1 at risk, 1 exhausted, 1 no data")
    assert lines == [
        "*Checkout API*: availability 99.974 %, p95 180.5 ms, errors 321 (0.026 %)",
        "*Ledger*: no traffic",
        ":red_circle: *Checkout errors* (Checkout API): exhausted, budget left -12.5 %",
        ":warning: *Checkout latency* (Checkout API): at risk, budget left 18.0 %",
        ":grey_question: *Ledger availability* (Ledger): no data",
        "<https://portal.example/admin/slo/dailyreport/12/|Open the full report>",
    ]


def test_slack_escapes():
    report = evil_report()
    report["url"] = "https://portal.example/r?a=1&b=<2>"
    report["tenant"] = "a&b"
    headline, lines = rr.slack_summary(report)
    assert headline.startswith("Daily SLO report a&amp;b 2026-11-22:")
    joined = "\n".join(lines)
    assert "<script" not in joined
    assert lines[0].startswith(f"*{EVIL_SLACK}*: availability")
    assert f":warning: *{EVIL_SLACK}* ({EVIL_SLACK}): at risk" in joined
    assert lines[-1] == "<https://portal.example/r?a=1&amp;b=&lt;2&gt;|Open the full report>"
    # Tiny availability errors: "> 99.999 %" is escaped too.
    report = make_report()
    report["services"][0]["availability"] = 0.9999999
    assert "availability &gt; 99.999 %" in rr.slack_summary(report)[1][0]


def test_slack_line_cap_keeps_room_for_problem_slos():
    report = make_report()
    many = []
    for i in range(20):
        svc = copy.deepcopy(report["services"][0])
        svc["name"] = svc["display_name"] = f"svc{i}"
        svc["slos"] = [dict(svc["slos"][2], display_name=f"slo{i}")]  # exhausted
        many.append(svc)
    report["services"] = many
    _, lines = rr.slack_summary(report)
    assert len(lines) == 15
    assert sum(line.startswith("*svc") for line in lines) == 6
    assert sum(line.startswith(":red_circle:") for line in lines) == 7
    assert lines[-2] == "_… 27 more_"
    assert lines[-1].endswith("|Open the full report>")
    report["url"] = ""
    _, lines = rr.slack_summary(report)
    assert len(lines) == 15
    assert lines[-1] == "_… 26 more_"


# --- charts -------------------------------------------------------------------------------------


def parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))  # noqa: S314 (our own output)


def columns(svg: str) -> list[ET.Element]:
    root = parse(svg)
    return [g for g in root.iterfind(".//svg:g", NS) if g.get("class", "").split()[:1] == ["col"]]


def assert_csp_clean(svg: str) -> None:
    root = parse(svg)
    for el in root.iter():
        assert "style" not in el.attrib
        assert not any(name.startswith("on") for name in el.attrib)
    assert "<script" not in svg


def test_charts():
    result = rr.charts(make_report())
    assert [c["service"] for c in result] == ["checkout", "ledger"]
    busy, quiet = result
    assert busy["title"] == "Checkout API"
    for key in ("volume", "latency", "errors"):
        assert isinstance(busy[key], SafeString)
        assert_csp_clean(busy[key])
        assert_csp_clean(quiet[key])
        assert len(columns(busy[key])) == 24
    assert 'class="chart chart-hourly slo-chart-volume"' in busy["volume"]
    assert len(parse(busy["volume"]).findall(".//svg:rect[@class='col-bar']", NS)) == 24
    assert "<title>13:00: 12,013 requests</title>" in busy["volume"]
    assert "<title>13:00: p95 170.2 ms</title>" in busy["latency"]
    assert "<title>00:00: 0.025 % (3 errors in 12,000 requests)</title>" in busy["errors"]
    assert "<title>05:00: 0.000 % (0 errors in 12,005 requests)</title>" in busy["errors"]
    x_labels = [
        t.text
        for t in parse(busy["volume"]).iterfind(
            ".//svg:g[@class='chart-axis chart-axis-x']/svg:text", NS
        )
    ]
    assert x_labels == ["00:00", "06:00", "12:00", "18:00"]
    # No traffic: zero-height columns for requests (axis 0 to 1), "no data" for the others.
    assert len(columns(quiet["volume"])) == 24
    assert y_ticks(quiet["volume"]) == ["0", "1"]
    assert rr.NO_DATA in quiet["latency"]
    assert rr.NO_DATA in quiet["errors"]
    assert "chart-no-data" in quiet["errors"]


def y_ticks(svg: str) -> list[str]:
    root = parse(svg)
    (axis,) = (g for g in root.iterfind(".//svg:g", NS) if "chart-axis-y" in g.get("class", ""))
    return [t.text or "" for t in axis.findall("svg:text", NS)]


def test_chart_y_axis_labels():
    busy = rr.charts(make_report())[0]
    assert y_ticks(busy["errors"]) == ["0%", "0.01%", "0.02%", "0.03%"]
    assert y_ticks(busy["volume"]) == ["0", "5,000", "10,000", "15,000"]
    assert y_ticks(busy["latency"]) == ["0", "50", "100", "150", "200"]


def test_dst_day_has_25_columns():
    report = make_report(25)
    busy = rr.charts(report)[0]
    for key in ("volume", "latency", "errors"):
        assert len(columns(busy[key])) == 25
    assert len(parse(busy["volume"]).findall(".//svg:rect[@class='col-bar']", NS)) == 25
    assert "<title>01:00 (2): 12,002 requests</title>" in busy["volume"]
    assert "<title>01:00: 12,001 requests</title>" in busy["volume"]
    assert len(columns(rr.charts(make_report(23))[0]["volume"])) == 23


def test_hourly_chart_gaps():
    points = [("00:00", 5, "a"), ("01:00", None, "b"), ("02:00", 10, "c")]
    svg = rr.hourly_chart(points, title="t", y_label="requests")
    cols = columns(svg)
    assert [c.get("class") for c in cols] == ["col", "col col-empty", "col"]
    assert len(parse(svg).findall(".//svg:rect[@class='col-bar']", NS)) == 2
    assert "highest c; 1 hours without data." in svg


def test_chart_escaping():
    busy = rr.charts(evil_report())[0]
    for key in ("volume", "latency", "errors"):
        svg = busy[key]
        assert "<script" not in svg
        assert f"{EVIL_HTML}: " in svg
        assert_csp_clean(svg)


# --- admin page ---------------------------------------------------------------------------------


def render_page(report: dict) -> str:
    context = rr.admin_context(report)
    assert set(context) == {"report", "charts", "title"}
    return render_to_string(rr.TEMPLATE, context)


def test_admin_page():
    html = render_page(make_report())
    assert "<h1>Daily SLO report — acme — 2026-11-22</h1>" in html
    assert "/static/slo/slo.css" in html
    assert (
        '<h2 id="slo-summary-heading">4 SLOs: 1 ok, 1 at risk, 1 exhausted, 1 no data</h2>' in html
    )
    count = '<span class="slo-count-n">1</span> Exhausted</li>'
    assert f'<li class="slo-count slo-status-exhausted">{count}' in html
    assert "Daily SLO reports" in html  # breadcrumbs, linked once the model admin exists
    assert '<th scope="row">Availability</th><td>99.974 %</td>' in html
    assert '<th scope="row">Requests</th><td>1,234,567</td>' in html
    assert '<th scope="row">STP rate</th><td>93.06 % (9,120 / 9,800)</td>' in html
    assert '<th scope="row">Availability</th><td>—</td>' in html
    assert '<span class="slo-badge slo-status-at_risk">At risk</span>' in html
    assert '<span class="slo-badge slo-status-exhausted">Exhausted</span>' in html
    assert '<span class="slo-badge slo-status-no_data">No data</span>' in html
    assert '<span class="slo-badge slo-status-ok">OK</span>' in html
    assert '<code class="slo-message">TimeoutError: upstream payments</code>' in html
    assert "No traffic on this day." in html
    assert html.count('class="chart chart-hourly slo-chart-volume"') == 2
    assert html.count("slo-chart-errors") == 2
    content = html[html.index('<div class="slo-report">') :]
    assert " style=" not in content
    assert "<script" not in content


def test_admin_page_escapes():
    html = render_page(evil_report())
    assert "<script>alert" not in html
    assert f"<strong>{EVIL_HTML}</strong>" in html
    assert f'<h2 id="slo-service-1">{EVIL_HTML} <small' in html
    assert f'<code class="slo-message">{EVIL_HTML}</code>' in html


def test_admin_page_dst_and_with_request(rf):
    from django.contrib.auth.models import AnonymousUser

    request = rf.get("/admin/slo/dailyreport/12/")
    request.user = AnonymousUser()
    html = rr.render_admin(make_report(25), request)
    assert "25-hour day (daylight saving time change)" in html
    volume = re.search(r"<svg[^>]*slo-chart-volume.*?</svg>", html, re.S).group(0)
    assert len(columns(volume)) == 25
