"""Alerts in real headless Chromium: the firing list, the dead-letter queue, and a session-less
acknowledge link clicked through. Saves the screenshots the README's tour shows."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import override_settings

from apps.alerts import payloads
from apps.alerts.delivery import deliver_due
from apps.alerts.demo import load_demo
from apps.alerts.models import Alert, AlertStatus, Delivery
from apps.core.services import beat
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, create_tenant
from tests.browser import PASSWORD, SCREENSHOTS, _logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def off_loop(query):
    """Run an ORM call in a thread of its own. Playwright's sync API keeps an event loop running
    in the test's thread, where Django refuses blocking database calls (and would open a
    connection per context that nobody closes)."""

    def run():
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def alerts_demo(django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    demo = create_tenant(slug="demo", name="Demo Platform Team")
    add_member(tenant=demo, user=admin, role=Role.TENANT_ADMIN)
    load_demo(demo)
    with override_settings(ALERT_DELIVERY_MAX_ATTEMPTS=1):
        deliver_due()
    beat()
    return demo


def test_alert_list_dead_letters_and_overview_tile(alerts_demo, portal_url, browser):
    page = _logged_in_page(browser, f"{portal_url}/admin/", ".ops-overview", 900, width=1600)
    alerts_link = page.get_by_role("link", name="Alerts", exact=True)
    tile = page.locator(".ops-tile").filter(has=alerts_link).inner_text().splitlines()
    assert tile[tile.index("tier 1 firing") + 1] == "1", tile
    assert int(tile[tile.index("dead letters") + 1]) >= 1, tile

    page.goto(f"{portal_url}/admin/alerts/alert/")
    page.wait_for_selector("#result_list")
    titles = page.locator("#result_list th.field-title").all_inner_texts()
    assert any("BLOCK violation R07" in t for t in titles), titles
    page.screenshot(path=str(SCREENSHOTS / "alerts.png"))

    page.goto(f"{portal_url}/admin/alerts/deadletter/")
    page.wait_for_selector("#result_list")
    channels = page.locator("#result_list td.field-channel").all_inner_texts()
    assert channels and set(channels) == {"Legacy chat webhook (webhook)"}, channels
    page.screenshot(path=str(SCREENSHOTS / "alerts-dlq.png"))


def test_an_ack_link_is_clicked_through_without_logging_in(alerts_demo, portal_url, browser):

    def ack_url_and_status() -> tuple[str, str]:
        alert = Alert.objects.get(dedup_key="R07:acme/web#42")
        delivery = Delivery.objects.filter(alert=alert, channel__kind="webhook").first()
        return json.loads(payloads.build(delivery).body)["ack_url"], alert.status

    def status() -> str:
        return Alert.objects.get(dedup_key="R07:acme/web#42").status

    link, before = off_loop(ack_url_and_status)
    assert before == AlertStatus.FIRING
    link = link.replace("http://127.0.0.1:8000", portal_url)
    page = browser.new_page(viewport={"width": 1000, "height": 500})
    page.goto(link)
    page.wait_for_selector("input[type=submit]")
    assert "BLOCK violation R07" in page.content()
    assert off_loop(status) == AlertStatus.FIRING, "opening the link acknowledges nothing"
    page.screenshot(path=str(SCREENSHOTS / "alert-ack-link.png"))
    page.click("input[type=submit]")
    page.wait_for_selector("text=Acknowledged.")
    assert off_loop(status) == AlertStatus.ACKNOWLEDGED
