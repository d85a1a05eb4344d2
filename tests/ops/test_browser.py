"""Drive the admin in real headless Chromium (Debian's /usr/bin/chromium through Playwright):
log in, see the operations overview, switch tenant, and save the screenshot the README shows."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.alerts.delivery import deliver_due
from apps.alerts.demo import load_demo
from apps.audit.services import store_evidence
from apps.compliance.demo import load_demo as load_compliance_demo
from apps.core.services import beat
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, create_api_token, create_tenant
from tests.browser import PASSWORD, SCREENSHOTS, _logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_data(django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    demo = create_tenant(slug="demo", name="Demo Platform Team")
    payments = create_tenant(slug="payments", name="Payments")
    for tenant in (demo, payments):
        add_member(tenant=tenant, user=admin, role=Role.TENANT_ADMIN)
    create_api_token(tenant=demo, name="demo-ci", role=Role.CI)
    store_evidence(tenant_id=demo.pk, kind="demo.release-evidence", content={"tests": 812})
    load_demo(demo)
    load_compliance_demo(demo)
    with override_settings(ALERT_DELIVERY_MAX_ATTEMPTS=1):
        deliver_due()
    beat()
    return admin


def test_admin_login_overview_and_tenant_switch(demo_data, portal_url, browser):
    page = _logged_in_page(browser, f"{portal_url}/admin/", ".ops-overview", height=900)
    assert page.title().startswith("Operations overview")
    tiles = page.locator(".ops-tile h2").all_inner_texts()
    assert {"Tenants & access", "Audit trail", "Workers & outbox"} <= set(tiles)
    assert (
        page.locator(".ops-tile", has_text="Tenants & access").locator("dd").first.inner_text()
        == "2"
    )

    page.select_option("#ops-tenant", label="Demo Platform Team")
    page.click(".ops-tenant-switch button")
    page.wait_for_selector(".ops-overview")
    assert page.locator("#ops-tenant option:checked").inner_text() == "Demo Platform Team"
    lines = page.locator(".ops-tile", has_text="Tenants & access").inner_text().splitlines()
    assert lines[lines.index("active API tokens") + 1] == "1", lines

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-overview.png"), full_page=True)
    assert (SCREENSHOTS / "admin-overview.png").stat().st_size > 10_000


def test_audit_trail_and_api_docs_render(demo_data, portal_url, browser):
    page = _logged_in_page(browser, f"{portal_url}/admin/audit/auditevent/", "#result_list")
    actions = page.locator("#result_list td.field-action").all_inner_texts()
    assert "evidence.stored" in actions and "tenant.created" in actions
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "audit-trail.png"))

    page.goto(f"{portal_url}/admin/django_celery_beat/periodictask/")
    schedules = page.locator("#result_list th.field-name").all_inner_texts()
    assert {"beat heartbeat", "drain outbox", "audit chain verification"} <= set(schedules), (
        schedules
    )
    page.screenshot(path=str(SCREENSHOTS / "beat-schedules.png"))

    page.goto(f"{portal_url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/audit/evidence" in paths
    page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
