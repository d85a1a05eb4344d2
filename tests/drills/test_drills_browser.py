"""DR drills in real headless Chromium on the demo data (two real restore drills of the test
database): the list with last results, a drill's RTO trend, a run's per-table verification, the
"run now" action and the overview tile. Saves the README tour's screenshots."""

from __future__ import annotations

import pytest

from apps.drills.demo import load_demo
from apps.drills.models import Drill, DrillRun
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, create_tenant
from tests.alerts.test_alerts_browser import off_loop
from tests.browser import PASSWORD, SCREENSHOTS, _logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def drills_demo(django_user_model, backup_dir):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    demo = create_tenant(slug="demo", name="Demo Platform Team")
    add_member(tenant=demo, user=admin, role=Role.TENANT_ADMIN)
    assert load_demo(demo) == ["passed", "passed"]
    assert load_demo(demo) == [], "loading twice changes nothing"
    return demo


def test_drill_list_trend_run_detail_run_now_and_tile(drills_demo, portal_url, browser):
    page = _logged_in_page(browser, f"{portal_url}/admin/drills/drill/", "#result_list", 420, 1400)
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    restore = page.locator("#result_list tr", has_text="portal-weekly-restore")
    assert restore.locator(".drill-status-ok").count() == 1
    assert "never run" in page.locator("#result_list tr", has_text="rollback").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "drills-list.png"))

    drill = off_loop(lambda: Drill.objects.get(name="portal-weekly-restore"))
    page.set_viewport_size({"width": 1280, "height": 1200})
    page.goto(f"{portal_url}/admin/drills/drill/{drill.pk}/change/")
    page.wait_for_selector("svg")
    assert page.locator("svg .drill-rto-met").count() == 2
    page.locator("fieldset", has_text="Results").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "drills-trend.png"))

    run = off_loop(lambda: DrillRun.objects.filter(drill=drill).order_by("-pk").first())
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.goto(f"{portal_url}/admin/drills/drillrun/{run.pk}/change/")
    page.wait_for_selector("#content")
    text = page.inner_text("#content")
    assert "public.slo_service" in text and "heap and B-tree indexes checked" in text
    assert text.count("passed") >= 50  # one per table verified
    page.screenshot(path=str(SCREENSHOTS / "drills-run.png"))

    page.goto(f"{portal_url}/admin/drills/drill/")
    page.locator("#result_list tr", has_text="portal-weekly-restore").locator(
        "input.action-select"
    ).check()
    page.select_option("select[name=action]", "run_now")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "queued" in page.inner_text(".messagelist")
    assert off_loop(lambda: DrillRun.objects.filter(status="queued").count()) == 1

    page.goto(f"{portal_url}/admin/")
    tile = page.locator("article.ops-tile", has_text="DR drills")
    figures = dict(
        zip(tile.locator("dt").all_inner_texts(), tile.locator("dd").all_inner_texts(), strict=True)
    )
    assert figures["last drill"].startswith("portal-weekly-restore: passed")
    assert figures["RTO vs target"].endswith("/ 900 s")
    assert figures["backup age"].endswith("min")
    assert "ops-ok" in tile.get_attribute("class")
