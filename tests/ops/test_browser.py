"""Drive the admin in real headless Chromium (Debian's /usr/bin/chromium through Playwright):
log in, see the operations overview, switch tenant, and save the screenshot the README shows."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from apps.audit.services import store_evidence
from apps.core.services import beat
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, create_api_token, create_tenant

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery-staple"

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portal_url():
    """The portal as production runs it: gunicorn + whitenoise, as the least-privilege role."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{settings.DATABASE_APP_ROLE}@{db['HOST'] or '127.0.0.1'}"
        f":{db['PORT'] or 5432}/{db['NAME']}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "opsportal.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"gunicorn did not start: {server.stderr.read() if server.stderr else ''}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def demo_data(django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    demo = create_tenant(slug="demo", name="Demo Platform Team")
    payments = create_tenant(slug="payments", name="Payments")
    for tenant in (demo, payments):
        add_member(tenant=tenant, user=admin, role=Role.TENANT_ADMIN)
    create_api_token(tenant=demo, name="demo-ci", role=Role.CI)
    store_evidence(tenant_id=demo.pk, kind="demo.release-evidence", content={"tests": 812})
    beat()
    return admin


def _logged_in_page(browser, url: str, ready_selector: str, height: int = 800):
    """A new page that logs into the admin on its way to `url` and waits until it shows."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    page.goto(url)
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector(ready_selector)
    return page


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
