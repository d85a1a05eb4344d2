"""SLOs in real headless Chromium on the demo data: the SLO list with budgets and burn rates
(search is paging), a service's per-route page, the daily report with its SVG charts, the canary
release with its per-minute checks, and the overview tile. Saves the README tour's screenshots."""

from __future__ import annotations

import pytest

from apps.slo.demo import load_demo
from apps.slo.models import DailyReport, Release, Service
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, create_tenant
from tests.alerts.test_alerts_browser import off_loop
from tests.browser import PASSWORD, SCREENSHOTS, _logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def slo_demo(django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    demo = create_tenant(slug="demo", name="Demo Platform Team")
    add_member(tenant=demo, user=admin, role=Role.TENANT_ADMIN)
    assert load_demo(demo)
    return demo


def test_slo_list_routes_report_canary_and_tile(slo_demo, portal_url, browser):
    page = _logged_in_page(browser, f"{portal_url}/admin/slo/slo/", "#result_list", 480, 1500)
    search = page.locator("#result_list tr", has=page.locator("a", has_text="search-availability"))
    assert "page" in search.inner_text()
    assert search.locator(".slo-status-exhausted, .slo-status-at_risk, .slo-status-ok").count() == 1
    assert page.locator("#result_list tbody tr").count() == 4
    page.screenshot(path=str(SCREENSHOTS / "slo-list.png"))

    web = off_loop(lambda: Service.objects.get(name="web"))
    page.goto(f"{portal_url}/admin/slo/service/{web.pk}/routes/")
    page.wait_for_selector("table.slo-routes")
    assert page.locator("table.slo-routes tbody tr").count() == 3
    assert "/checkout/pay" in page.inner_text("table.slo-routes")

    report = off_loop(lambda: DailyReport.objects.get())
    page.set_viewport_size({"width": 1280, "height": 1100})
    page.goto(f"{portal_url}/admin/slo/dailyreport/{report.pk}/change/")
    page.wait_for_selector("svg")
    text = page.inner_text("#content")
    assert "Web storefront" in text and "straight-through processing" in text
    assert page.locator("svg").count() >= 9  # volume, latency and errors for each service
    page.screenshot(path=str(SCREENSHOTS / "slo-daily-report.png"))

    release = off_loop(lambda: Release.objects.get())
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{portal_url}/admin/slo/release/{release.pk}/change/")
    page.wait_for_selector("#content")
    assert "promote" in page.inner_text("#content")
    page.screenshot(path=str(SCREENSHOTS / "slo-canary.png"))

    page.goto(f"{portal_url}/admin/")
    tile = page.locator("article.ops-tile", has_text="SLOs")
    figures = dict(
        zip(tile.locator("dt").all_inner_texts(), tile.locator("dd").all_inner_texts(), strict=True)
    )
    assert figures["pages firing"] == "1"
    assert figures["open canaries"] == "1"
    assert "ops-bad" in tile.get_attribute("class")
