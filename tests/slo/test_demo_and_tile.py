"""The SLO demo loads through the real ingestion path and the overview tile reads it."""

from __future__ import annotations

from apps.slo.demo import load_demo
from apps.slo.models import DailyReport, Release, SLOStatus


def test_demo_pages_on_search_promotes_the_canary_and_fills_the_tile(tenant, admin_client_for):
    assert load_demo(tenant)
    assert not load_demo(tenant), "loading twice changes nothing"
    firing = {s.slo.name: s.firing for s in SLOStatus.objects.select_related("slo")}
    assert firing["search-availability"] == ["page"]
    assert firing["checkout-availability"] == []
    assert Release.objects.get().verdict == "promote"
    assert DailyReport.objects.count() == 1

    page = admin_client_for(tenant).get("/admin/").content.decode()
    tile = page[page.index(">SLOs<") :]
    assert "pages firing" in tile and "open canaries" in tile


def test_beat_keeps_the_demo_alive(tenant):
    from datetime import timedelta

    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from apps.slo.demo import push_live_minutes
    from apps.slo.models import MinuteSample, Service

    assert load_demo(tenant)
    assert PeriodicTask.objects.get(name="slo demo traffic").task == "slo.demo_traffic"
    before = MinuteSample.objects.count()
    later = timezone.now() + timedelta(minutes=5)
    pushed = push_live_minutes(tenant, now=later)
    assert pushed == MinuteSample.objects.count() - before > 0
    assert push_live_minutes(tenant, now=later) == 0, "nothing twice"
    newest = later.replace(second=0, microsecond=0) - timedelta(minutes=1)
    assert set(Service.objects.values_list("last_data_at", flat=True)) == {newest}
    canary = MinuteSample.objects.filter(version="2026.11.23", minute=newest)
    assert canary.exists()
