"""Flags in real headless Chromium on the demo data: the list with its per-environment toggles,
the kill switch pulled through its confirmation page, and the overview tile. Saves the
screenshots the README's tour shows."""

from __future__ import annotations

import pytest

from apps.flags.demo import load_demo
from apps.flags.models import FlagState
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, create_tenant
from tests.alerts.test_alerts_browser import off_loop
from tests.browser import PASSWORD, SCREENSHOTS, _logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def flags_demo(django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    demo = create_tenant(slug="demo", name="Demo Platform Team")
    add_member(tenant=demo, user=admin, role=Role.TENANT_ADMIN)
    assert load_demo(demo)
    return demo


def _production(key: str) -> FlagState:
    return FlagState.objects.get(flag__key=key, environment__key="production")


def test_flag_list_kill_switch_and_tile(flags_demo, portal_url, browser):
    page = _logged_in_page(browser, f"{portal_url}/admin/flags/flag/", "#result_list", 700)
    row = page.locator("tr", has=page.locator("a", has_text="new-checkout"))
    assert row.locator("button.toggle.on").count() == 3
    killed = page.locator("tr", has=page.locator("a", has_text="recommendations"))
    assert "production: killed" in killed.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "flags-list.png"))

    row.locator("a", has_text="new-checkout").click()
    page.click("a.kill-switch")
    page.wait_for_selector("form.kill-confirm")
    page.uncheck("input[value=development]")
    page.uncheck("input[value=staging]")
    page.screenshot(path=str(SCREENSHOTS / "flags-kill-switch.png"))
    page.click("input.kill-switch")
    page.wait_for_selector(".messagelist .warning")
    assert "Kill switch pulled: new-checkout is off in production" in page.inner_text(
        ".messagelist"
    )
    state = off_loop(lambda: _production("new-checkout"))
    assert not state.enabled and state.killed_at is not None
    staging = off_loop(
        lambda: FlagState.objects.get(flag__key="new-checkout", environment__key="staging")
    )
    assert staging.enabled, "only the chosen environment was turned off"

    page.goto(f"{portal_url}/admin/")
    tile = page.locator("article.ops-tile", has_text="Feature flags")
    figures = dict(
        zip(tile.locator("dt").all_inner_texts(), tile.locator("dd").all_inner_texts(), strict=True)
    )
    assert figures["kill switches engaged"] == "2"  # the demo's recommendations + this one
    assert figures["potentially stale"] == "1"  # search-limits: operational, 20 days old
    assert figures["change requests waiting"] == "2"  # one now, one scheduled for later
    assert figures["rollouts in progress"] == "1"
    assert "ops-warn" in tile.get_attribute("class")

    page.goto(f"{portal_url}/admin/flags/flagchange/")
    assert page.locator("#result_list tbody tr").count() == 2
    page.screenshot(path=str(SCREENSHOTS / "flags-change-requests.png"))
    row = page.locator("#result_list tbody tr", has_text="search-limits")
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "approve")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist .success")
    served = off_loop(lambda: _production("search-limits").fallthrough)
    assert served == {"variant": "relaxed"}, "approved by a second person: applied at once"
