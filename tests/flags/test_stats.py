"""Evaluation statistics (in memory, flushed periodically) and the stale-flag report."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.flags import selectors, services, stats
from apps.flags.models import Flag, FlagEvaluationCount, FlagState
from tests.flags.test_ofrep import _post, evaluate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_counters():
    stats._take()
    yield
    stats._take()


def _counts(flag_key: str) -> dict[str, int]:
    return {
        row.variant: row.count
        for row in FlagEvaluationCount.objects.filter(
            flag__key=flag_key, environment__key="production"
        )
    }


def test_evaluations_are_counted_in_memory_then_flushed(production_key, settings):
    settings.FLAGS_STATS_FLUSH_SECONDS = 3600
    evaluate(production_key, "page-size")  # loads the snapshot
    for _ in range(3):
        evaluate(production_key, "page-size")
    _post("/ofrep/v1/evaluate/flags", production_key, {"context": {"targetingKey": "u"}})
    assert FlagEvaluationCount.objects.count() == 0, "nothing written per evaluation"
    written = stats.flush()
    assert written == 4 + 5
    assert _counts("page-size") == {"small": 5}
    assert _counts("banner") == {"plain": 1}
    state = FlagState.objects.get(flag__key="page-size", environment__key="production")
    assert state.last_evaluated_at is not None
    evaluate(production_key, "page-size")
    stats.flush()
    assert _counts("page-size") == {"small": 6}, "later flushes add up"


@pytest.mark.django_db(transaction=True)
def test_a_request_after_the_interval_flushes_in_the_background(production_key, settings):
    settings.FLAGS_STATS_FLUSH_SECONDS = 0
    stats._last_flush = time.monotonic()
    evaluate(production_key, "page-size")
    evaluate(production_key, "page-size")  # this one notices and starts the flush
    for _ in range(100):
        if FlagEvaluationCount.objects.filter(flag__key="page-size").exists():
            break
        time.sleep(0.05)
    assert sum(_counts("page-size").values()) >= 1


def _age(flag: Flag, days: int, now=None) -> None:
    created = (now or timezone.now()) - timedelta(days=days, hours=1)
    Flag._base_manager.filter(pk=flag.pk).update(created_at=created)


def test_stale_report_names_each_reason(tenant, flags):
    now = timezone.now()
    _age(flags["checkout"], 45)  # a release flag past 40 days, never evaluated for 30
    FlagState._base_manager.filter(flag=flags["page"]).update(last_evaluated_at=now)
    _age(flags["page"], 60)  # release kind by default: past lifetime, but in use
    ops = services.create_flag(tenant, key="cache-ttl", name="Cache TTL", kind="operational")
    _age(ops, 3)  # young operational flag: fine
    killer = services.create_flag(tenant, key="panic", name="Panic", kind="kill_switch")
    _age(killer, 400)  # kill switches never expire, but it has not been evaluated either
    production = FlagState.objects.get(flag=flags["banner"], environment__key="production")
    for day in range(0, 35, 5):
        FlagEvaluationCount.objects.create(
            tenant=tenant,
            environment=production.environment,
            flag=flags["banner"],
            variant="plain",
            day=(now - timedelta(days=day)).date(),
            count=100,
        )
    FlagState._base_manager.filter(flag=flags["banner"]).update(last_evaluated_at=now)
    report = {flag.key: reasons for flag, reasons in selectors.stale_flags(tenant, now=now)}
    assert report["new-checkout"] == ["release flag 45 days old", "not evaluated for 30 days"]
    assert report["page-size"] == ["release flag 60 days old"]
    assert report["panic"] == ["not evaluated for 30 days"]
    assert report["banner"] == ["served only 'plain' for 30 days"]
    assert "cache-ttl" not in report


def test_stale_report_api(api, make_token, tenant, flags):
    _age(flags["checkout"], 45)
    response = api(make_token(tenant)).get("/api/v1/flags/stale")
    assert response.status_code == 200
    keys = [item["key"] for item in response.json()]
    assert "new-checkout" in keys
