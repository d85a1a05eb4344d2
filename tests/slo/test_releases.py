"""Canary releases end to end: the API, beat's per-minute checks from pushed data, verdicts for
a healthy, a slow, an erroring and a quiet canary, alerts on a change, and flag rollouts halted
by a rollback (and by a page-level burn rate)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.alerts.models import Alert
from apps.flags import rollouts
from apps.flags.models import FlagState, RolloutPlan, RolloutStatus
from apps.slo import alerting, releases
from apps.slo.models import CanaryCheck, Release
from apps.tenancy.roles import Role
from tests.flags.conftest import flags  # noqa: F401  (fixture)
from tests.slo.conftest import minute_floor, record, rows_of

FAST = {"100": 900, "250": 990, "500": 1000, "+Inf": 1000}
SLOW = {"500": 100, "1000": 900, "2000": 1000, "+Inf": 1000}


@pytest.fixture
def ci(api, make_token, tenant):
    return api(make_token(tenant, Role.CI))


@pytest.fixture
def release(tenant, make_service):
    """A release that started 41 minutes before the evaluation end."""
    service = make_service(tenant)
    end = minute_floor() - timedelta(minutes=1)
    started = end - timedelta(minutes=40, seconds=30)
    release = releases.start_release(
        tenant,
        service,
        version="2.0.0",
        baseline_version="1.9.0",
        canary_weight=10,
        now=started,
    )
    release.test_end = end
    return release


def _push(tenant, release, minutes, canary_requests, canary_errors, canary_buckets):
    first = release.test_end - timedelta(minutes=minutes)
    rows = rows_of(
        "checkout",
        first,
        minutes,
        canary_requests,
        canary_errors,
        version="2.0.0",
        buckets={k: v * canary_requests // 1000 for k, v in canary_buckets.items()},
    )
    rows += rows_of(
        "checkout",
        first,
        minutes,
        9000,
        9,
        version="1.9.0",
        buckets={k: v * 9 for k, v in FAST.items()},
    )
    record(tenant, rows)


def _evaluate(release):
    return releases.evaluate_open_releases(now=release.test_end + timedelta(seconds=60))


def test_api_starts_a_release_and_serves_its_verdict(ci, tenant, make_service):
    make_service(tenant)
    response = ci.post(
        "/api/v1/releases",
        {
            "service": "checkout",
            "version": "2.0.0",
            "baseline_version": "1.9.0",
            "canary_weight": "10",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["verdict"] == "continue" and body["policy"]["max_p95_ms"] == 800
    verdict = ci.get(response["Location"])
    assert verdict.status_code == 200 and verdict.json()["id"] == body["id"]
    unknown = ci.post(
        "/api/v1/releases",
        {"service": "ghost", "version": "2", "baseline_version": "1", "canary_weight": "5"},
        format="json",
    )
    assert unknown.status_code == 422
    same = ci.post(
        "/api/v1/releases",
        {"service": "checkout", "version": "2", "baseline_version": "2", "canary_weight": "5"},
        format="json",
    )
    assert same.status_code == 400
    assert "baseline_version" in same.json()["errors"]


def test_healthy_canary_is_promoted_with_an_alert(tenant, release):
    _push(tenant, release, 40, 1000, 1, FAST)
    counts = _evaluate(release)
    assert counts == {"evaluated": 1, "changed": 1, "closed": 0}
    release.refresh_from_db()
    assert release.verdict == "promote"
    assert CanaryCheck.objects.filter(release=release).count() == 40
    assert release.verdict_figures["canary"]["requests"] == 40_000
    alert = Alert.objects.get(dedup_key=f"canary:{release.pk}:promote")
    assert alert.tier == 2 and "Promote checkout 2.0.0" in alert.title


def test_slow_canary_is_rolled_back_and_halts_listening_rollouts(tenant, release, flags):  # noqa: F811
    state = FlagState.objects.get(flag__key="new-checkout", environment__key="staging")
    plan = rollouts.start_rollout(state, min_dwell_minutes=0, halt_on=["canary:checkout"])
    rollouts.advance(plan)
    _push(tenant, release, 40, 1000, 0, SLOW)
    _evaluate(release)
    release.refresh_from_db()
    assert release.verdict == "rollback"
    assert any("p95" in reason for reason in release.verdict_reasons)
    alert = Alert.objects.get(dedup_key=f"canary:{release.pk}:rollback")
    assert alert.tier == 1
    assert RolloutPlan.objects.get(pk=plan.pk).status == RolloutStatus.HALTED

    # Late data for the last minutes is taken into account: those checks are redone.
    assert CanaryCheck.objects.filter(release=release).count() == 40

    # A rollback is final for the release, even if later minutes look healthy.
    later = release.test_end + timedelta(minutes=30)
    record(tenant, rows_of("checkout", release.test_end, 30, 1000, 0, version="2.0.0"))
    releases.evaluate_open_releases(now=later + timedelta(seconds=60))
    release.refresh_from_db()
    assert release.verdict == "rollback"


def test_erroring_canary_is_rolled_back(tenant, release):
    _push(tenant, release, 40, 1000, 10, FAST)  # 1 % errors, over 0.5 %
    _evaluate(release)
    release.refresh_from_db()
    assert release.verdict == "rollback"
    assert release.verdict_figures["sustained"] == ["error_ratio", "errors_vs_baseline"]


def test_quiet_canary_continues_rather_than_promoting(tenant, release):
    _push(tenant, release, 40, 3, 0, FAST)  # 120 requests in 40 minutes, under 200
    _evaluate(release)
    release.refresh_from_db()
    assert release.verdict == "continue"
    assert "Too little traffic: 120 canary requests" in release.verdict_reasons[0]
    assert not Alert.objects.filter(source="canary").exists()


def test_a_new_release_supersedes_and_old_ones_close(tenant, release, make_service):
    newer = releases.start_release(
        tenant, release.service, version="2.0.1", baseline_version="1.9.0", canary_weight=5
    )
    release.refresh_from_db()
    assert release.closed_at is not None and release.close_reason == "superseded by 2.0.1"
    far = newer.started_at + timedelta(minutes=241)
    assert releases.evaluate_open_releases(now=far)["closed"] == 1
    assert Release.objects.filter(closed_at=None).count() == 0


def test_a_page_level_burn_halts_rollouts_listening_to_the_slo(
    tenant,
    make_service,
    make_slo,
    flags,  # noqa: F811
):
    slo = make_slo(make_service(tenant))
    state = FlagState.objects.get(flag__key="new-checkout", environment__key="staging")
    plan = rollouts.start_rollout(state, min_dwell_minutes=0, halt_on=[slo.signal])
    rollouts.advance(plan)
    end = minute_floor() - timedelta(minutes=1)
    record(tenant, rows_of("checkout", end - timedelta(minutes=60), 60, 1000, 30))
    alerting.evaluate(now=end + timedelta(seconds=60))
    assert RolloutPlan.objects.get(pk=plan.pk).status == RolloutStatus.HALTED
    assert "page-level burn rate on checkout-availability" in (
        RolloutPlan.objects.get(pk=plan.pk).status_reason
    )


def test_closing_a_release_resolves_its_verdict_alert(ci, tenant, release):
    _push(tenant, release, 40, 1000, 10, FAST)
    _evaluate(release)
    assert Alert.objects.get(dedup_key=f"canary:{release.pk}:rollback").status == "firing"
    response = ci.post(f"/api/v1/releases/{release.pk}/close", {"reason": "rolled back"})
    assert response.status_code == 200
    assert response.json()["close_reason"] == "rolled back"
    assert Alert.objects.get(dedup_key=f"canary:{release.pk}:rollback").status == "resolved"
