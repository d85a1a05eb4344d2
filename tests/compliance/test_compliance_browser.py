"""The Compliance dashboard in real headless Chromium, on the demo data: tile colours match the
data, a filter narrows the table, and approving an override in the admin turns a BLOCKED pull
request into OVERRIDE_APPROVED. Saves the screenshots the README's tour shows."""

from __future__ import annotations

import pytest

from apps.compliance import selectors
from apps.compliance.demo import load_demo
from apps.compliance.models import PullRequest
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, create_tenant
from tests.alerts.test_alerts_browser import off_loop
from tests.browser import PASSWORD, SCREENSHOTS, _logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def compliance_demo(django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    demo = create_tenant(slug="demo", name="Demo Platform Team")
    add_member(tenant=demo, user=admin, role=Role.TENANT_ADMIN)
    assert load_demo(demo)
    return demo


def _decision(repository: str, number: int) -> str:
    return PullRequest.objects.get(repository=repository, number=number).decision


def test_dashboard_tiles_filters_and_an_override_approval(compliance_demo, portal_url, browser):
    expected = off_loop(
        lambda: {s.rule.id: s.status for s in selectors.rule_statuses(compliance_demo)}
    )
    assert {"red", "yellow", "green"} <= set(expected.values()), expected

    page = _logged_in_page(
        browser, f"{portal_url}/admin/compliance/", ".compliance-tiles", 1500, width=1400
    )
    tiles = page.locator(".rule-tile")
    shown = {
        tiles.nth(i).get_attribute("data-rule"): tiles.nth(i).get_attribute("data-status")
        for i in range(tiles.count())
    }
    assert shown == expected
    colours = {
        status: page.locator(f".rule-tile.status-{status}").first.evaluate(
            "e => getComputedStyle(e).borderLeftColor"
        )
        for status in ("red", "yellow", "green")
    }
    assert len(set(colours.values())) == 3, colours
    updated = page.locator("[data-updated-at]").first
    before = updated.inner_text()
    assert before.startswith("20")
    page.wait_for_timeout(1100)  # "updated at" has one-second resolution
    page.evaluate("window.opsportalPoller.pollNow()")  # what the 5-minute timer calls
    page.wait_for_function(
        "before => document.querySelector('[data-updated-at]').textContent !== before", arg=before
    )
    assert page.locator("#compliance-live .rule-tile").count() == len(expected), "refreshed"
    assert "error" not in (page.locator("[data-poll-status]").get_attribute("class") or "")
    page.screenshot(path=str(SCREENSHOTS / "compliance-dashboard.png"), full_page=False)

    rows_before = page.locator("#violations-table tbody tr[data-rule]").count()
    page.select_option("select[name=rule]", "R01")  # auto-submits the filter form
    page.wait_for_url("**rule=R01**")
    rules_after = page.locator("#violations-table tbody tr[data-rule]").evaluate_all(
        "rows => rows.map(r => r.dataset.rule)"
    )
    assert rules_after and set(rules_after) == {"R01"}
    assert len(rules_after) < rows_before

    page.goto(f"{portal_url}/admin/compliance/rules/R01/")
    page.wait_for_selector(".compliance-charts svg")
    page.screenshot(path=str(SCREENSHOTS / "compliance-rule.png"))

    assert off_loop(lambda: _decision("acme/api", 57)) == "BLOCKED"
    page.goto(f"{portal_url}/admin/overrides/override/")
    page.wait_for_selector("#result_list")
    row = page.locator("#result_list tbody tr").filter(has_text="acme/api#57")
    assert row.count() == 1
    page.screenshot(path=str(SCREENSHOTS / "overrides-queue.png"))
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "approve")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "Approved 1 override" in page.locator(".messagelist").inner_text()
    assert off_loop(lambda: _decision("acme/api", 57)) == "OVERRIDE_APPROVED"

    page.goto(f"{portal_url}/admin/compliance/")
    badge = page.locator("#pull-requests-table tr[data-pr='acme/api#57'] .decision-badge")
    assert badge.inner_text() == "OVERRIDE_APPROVED"

    page.goto(f"{portal_url}/admin/")
    page.wait_for_selector(".ops-overview")
    tile = page.locator(".ops-tile").filter(
        has=page.get_by_role("link", name="Compliance gate", exact=True)
    )
    assert "pull requests blocked" in tile.inner_text()
