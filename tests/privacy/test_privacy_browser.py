"""Privacy in real headless Chromium on the demo data: the request queue with its deadlines, a
privacy officer taking an erasure through verification, approval and its dry run with the admin
actions, the completed erasure with what was done per source, the Article 30 record and the
overview tile. Saves the README tour's screenshots."""

from __future__ import annotations

import pytest

from apps.privacy.demo import load_demo
from apps.privacy.models import PrivacyRequest
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, create_tenant
from tests.alerts.test_alerts_browser import off_loop
from tests.browser import PASSWORD, SCREENSHOTS, _logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def privacy_demo(django_user_model, settings, tmp_path):
    settings.EVIDENCE_DIR = tmp_path / "evidence"
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    demo = create_tenant(slug="demo", name="Demo Platform Team")
    add_member(tenant=demo, user=admin, role=Role.PRIVACY_OFFICER)
    assert load_demo(demo) == 7
    return demo


def _act(page, row_text: str, action: str) -> str:
    page.locator("#result_list tr", has_text=row_text).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    return page.inner_text(".messagelist")


def test_queue_erasure_steps_dry_run_register_and_tile(privacy_demo, portal_url, browser):
    page = _logged_in_page(
        browser,
        f"{portal_url}/admin/privacy/privacyrequest/",
        "#result_list",
        760,
    )
    assert page.locator("#result_list tbody tr").count() == 7
    overdue = page.locator("#result_list tr", has_text="cust-20931")
    assert "days overdue" in overdue.inner_text() and overdue.locator(".drill-status-bad").count()
    page.screenshot(path=str(SCREENSHOTS / "privacy-requests.png"))

    assert "now verified" in _act(page, "jordan.lee@example.com", "to_verified")
    assert "now approved" in _act(page, "jordan.lee@example.com", "to_approved")
    message = _act(page, "jordan.lee@example.com", "dry_run")
    assert "rows in" in message and "would change" in message
    pending = off_loop(lambda: PrivacyRequest.objects.get(subject_email="jordan.lee@example.com"))
    assert pending.status == "approved" and pending.planned_at is not None

    erased = off_loop(
        lambda: PrivacyRequest.objects.get(request_type="erasure", status="completed")
    )
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.goto(f"{portal_url}/admin/privacy/privacyrequest/{erased.pk}/change/")
    page.wait_for_selector("#content")
    text = page.inner_text("#content")
    assert "portal.user_accounts" in text and "retained" in text and "Art. 7(1)" in text
    assert "c.dubois@example.com" not in text  # the erased subject is gone from her request
    page.screenshot(path=str(SCREENSHOTS / "privacy-erasure.png"))

    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(f"{portal_url}/admin/privacy/processingactivity/register/")
    page.wait_for_selector("#content")
    register = page.inner_text("#content")
    assert "Marketing email" in register and "EU-US Data Privacy Framework" in register
    page.screenshot(path=str(SCREENSHOTS / "privacy-register.png"))

    page.goto(f"{portal_url}/admin/")
    tile = page.locator("article.ops-tile", has_text="Privacy requests")
    figures = dict(
        zip(tile.locator("dt").all_inner_texts(), tile.locator("dd").all_inner_texts(), strict=True)
    )
    assert figures["overdue"] == "1"
    assert (
        figures["erased in 30 days"] == "1" and figures["active restrictions"] == "3"
    )  # an objection (2 purposes), an erasure
    assert figures["retention"].endswith("40 rows (completed)")
    assert "ops-bad" in tile.get_attribute("class")
