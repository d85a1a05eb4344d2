"""The SLO demo loads through the real ingestion path and the overview tile reads it."""

from __future__ import annotations

import time

from apps.slo.demo import load_demo
from apps.slo.models import DailyReport, Release, SLOStatus


def test_demo_pages_on_search_promotes_the_canary_and_fills_the_tile(tenant, admin_client_for):
    started = time.monotonic()
    assert load_demo(tenant)
    assert time.monotonic() - started < 60
    assert not load_demo(tenant), "loading twice changes nothing"
    firing = {s.slo.name: s.firing for s in SLOStatus.objects.select_related("slo")}
    assert firing["search-availability"] == ["page"]
    assert firing["checkout-availability"] == []
    assert Release.objects.get().verdict == "promote"
    assert DailyReport.objects.count() == 1

    page = admin_client_for(tenant).get("/admin/").content.decode()
    tile = page[page.index(">SLOs<") :]
    assert "pages firing" in tile and "open canaries" in tile
