"""POST /api/v1/slo/events: storage, rollups, idempotent replays, and bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.slo.models import MinuteSample, RouteHour, ServiceHour, SLIPoint, SLOSettings
from apps.tenancy.roles import Role
from tests.slo.conftest import minute_floor, payload

URL = "/api/v1/slo/events"


@pytest.fixture
def pusher(api, make_token, tenant):
    return api(make_token(tenant, Role.CI))


def _hour_start(now=None):
    # An hour that is complete and recent, so every minute of it may be pushed.
    return minute_floor(now).replace(minute=0) - timedelta(hours=2)


def test_batch_is_stored_with_hour_rollups_and_sli_points(pusher, tenant, make_service, make_slo):
    service = make_service(tenant)
    availability = make_slo(service)
    latency = make_slo(service, "checkout-latency", sli_type="latency", latency_threshold_ms=250)
    hour = _hour_start()
    rows = []
    for i in range(3):
        minute = hour + timedelta(minutes=i)
        rows.append(
            payload(
                "checkout",
                minute,
                100,
                2,
                route="/cart",
                buckets={"100": 50, "250": 90, "+Inf": 100},
                counters={"invoices": 5},
                error_samples=[{"fingerprint": "e1", "message": "Timeout", "count": 2}],
            )
        )
        rows.append(payload("checkout", minute, 300, 0, route="/pay", buckets={"250": 300}))
    response = pusher.post(URL, {"rows": rows}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"rows": 6, "services": ["checkout"], "created_services": []}

    assert MinuteSample.objects.filter(service=service).count() == 6
    cart = RouteHour.objects.get(service=service, route="/cart", hour=hour)
    assert (cart.requests, cart.errors) == (300, 6)
    assert cart.buckets == {"100": 150, "250": 270, "+Inf": 300}
    assert cart.counters == {
        "invoices": {"sum": 15, "n": 3, "last": 5, "at": (hour + timedelta(minutes=2)).isoformat()}
    }
    assert cart.error_samples == [{"fingerprint": "e1", "count": 6, "message": "Timeout"}]
    whole = ServiceHour.objects.get(service=service, hour=hour)
    assert (whole.requests, whole.errors) == (1200, 6)
    # /pay has no 100 ms bound: its count there is interpolated (300 x 100/250 a minute), so
    # the merged histogram stays cumulative.
    assert whole.buckets == {"100": 150 + 3 * 120, "250": 1170, "+Inf": 1200}

    point = SLIPoint.objects.get(slo=availability, resolution="m", start=hour)
    assert (point.good, point.total) == (398, 400)
    hour_point = SLIPoint.objects.get(slo=availability, resolution="h", start=hour)
    assert (hour_point.good, hour_point.total) == (1194, 1200)
    day = hour.replace(hour=0)
    assert SLIPoint.objects.get(slo=availability, resolution="d", start=day).total >= 1200
    # latency: the 250 ms bound is a bucket bound, so the count is exact
    latency_hour = SLIPoint.objects.get(slo=latency, resolution="h", start=hour)
    assert (latency_hour.good, latency_hour.total) == (1170, 1200)


def test_replay_replaces_and_never_double_counts(pusher, tenant, make_service, make_slo):
    service = make_service(tenant)
    slo = make_slo(service)
    hour = _hour_start()
    first = [payload("checkout", hour + timedelta(minutes=i), 100, 1) for i in range(5)]
    assert pusher.post(URL, {"rows": first}, format="json").status_code == 200
    assert pusher.post(URL, {"rows": first}, format="json").status_code == 200
    assert ServiceHour.objects.get(service=service, hour=hour).requests == 500
    corrected = [payload("checkout", hour + timedelta(minutes=i), 100, 0) for i in range(2)]
    assert pusher.post(URL, {"rows": corrected}, format="json").status_code == 200
    rollup = ServiceHour.objects.get(service=service, hour=hour)
    assert (rollup.requests, rollup.errors) == (500, 3)
    point = SLIPoint.objects.get(slo=slo, resolution="h", start=hour)
    assert (point.good, point.total) == (497, 500)
    day_point = SLIPoint.objects.get(slo=slo, resolution="d", start=hour.replace(hour=0))
    assert (day_point.good, day_point.total) == (497, 500)


@pytest.mark.parametrize(
    ("row_changes", "field", "message"),
    [
        ({"requests": -1}, "rows[1].requests", "Must not be negative (got -1)."),
        ({"errors": 11}, "rows[1].errors", "More errors (11) than requests (10)."),
        (
            {"buckets": {"100": 8, "250": 5, "+Inf": 10}},
            "rows[1].buckets.250",
            "Buckets are cumulative: 5 is below the 8 of a lower bound.",
        ),
        ({"minute": "2026-01-01T10:05:30Z"}, "rows[1].minute", "not aligned to a minute"),
        ({"minute": "2026-01-01T10:05:00"}, "rows[1].minute", "Give a UTC offset"),
        ({"buckets": {"100": 3, "+Inf": 9}}, "rows[1].buckets.+Inf", "Must equal requests (10)"),
        ({"counters": {"csat": -2}}, "rows[1].counters.csat", "non-negative number"),
    ],
)
def test_bad_rows_are_named_and_nothing_is_stored(
    pusher, tenant, make_service, row_changes, field, message
):
    make_service(tenant)
    hour = _hour_start()
    good = payload("checkout", hour, 10, 1)
    bad = {**payload("checkout", hour + timedelta(minutes=1), 10, 1), **row_changes}
    response = pusher.post(URL, {"rows": [good, bad]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert message in " ".join(body["errors"][field])
    assert MinuteSample.objects.count() == 0
    assert ServiceHour.objects.count() == 0


def test_unknown_service_is_422_unless_auto_create(pusher, tenant):
    hour = _hour_start()
    response = pusher.post(URL, {"rows": [payload("ghost", hour, 10)]}, format="json")
    assert response.status_code == 422
    assert response.json()["errors"]["unknown"] == ["ghost"]
    assert MinuteSample.objects.count() == 0

    SLOSettings.objects.create(tenant=tenant, auto_create_services=True)
    response = pusher.post(URL, {"rows": [payload("ghost", hour, 10)]}, format="json")
    assert response.status_code == 200
    assert response.json()["created_services"] == ["ghost"]
    assert MinuteSample.objects.get().requests == 10


def test_duplicate_series_minute_in_one_batch_is_rejected(pusher, tenant, make_service):
    make_service(tenant)
    hour = _hour_start()
    rows = [payload("checkout", hour, 10), payload("checkout", hour, 12)]
    response = pusher.post(URL, {"rows": rows}, format="json")
    assert response.status_code == 400
    assert "Duplicates rows[0]" in response.json()["errors"]["rows[1].minute"][0]


def test_more_than_ten_thousand_rows_is_413(pusher, tenant, make_service):
    make_service(tenant)
    hour = _hour_start()
    rows = [payload("checkout", hour, 1, route=f"/r{i}") for i in range(10_001)]
    response = pusher.post(URL, {"rows": rows}, format="json")
    assert response.status_code == 413
    assert MinuteSample.objects.count() == 0


def test_future_and_too_old_minutes_are_rejected(pusher, tenant, make_service):
    make_service(tenant)
    now = minute_floor()
    rows = [
        payload("checkout", now + timedelta(hours=1), 1),
        payload("checkout", now - timedelta(days=30), 1),
    ]
    errors = pusher.post(URL, {"rows": rows}, format="json").json()["errors"]
    assert "in the future" in errors["rows[0].minute"][0]
    assert "older than 8 days" in errors["rows[1].minute"][0]


def test_viewer_cannot_push_and_tenants_are_isolated(
    api, make_token, tenant, other_tenant, make_service
):
    make_service(tenant)
    make_service(other_tenant)
    hour = _hour_start()
    viewer = api(make_token(tenant, Role.VIEWER))
    assert (
        viewer.post(URL, {"rows": [payload("checkout", hour, 1)]}, format="json").status_code == 403
    )
    other = api(make_token(other_tenant, Role.CI))
    assert (
        other.post(URL, {"rows": [payload("checkout", hour, 7)]}, format="json").status_code == 200
    )
    sample = MinuteSample.objects.get()
    assert sample.tenant_id == other_tenant.pk and sample.requests == 7


def test_added_batches_and_a_full_recompute_agree(tenant, make_service, make_slo):
    """New minutes are added to the stored rollups; a replay recomputes. Both give the same."""
    from apps.slo import rollups
    from apps.slo.services import record_batch
    from tests.slo.conftest import rows_of

    service = make_service(tenant)
    make_slo(service)
    make_slo(service, "checkout-latency", sli_type="latency", latency_threshold_ms=200)
    hour = _hour_start()
    buckets = {"100": 40, "250": 45, "+Inf": 50}
    counters = {"open_tickets": 3, "csat": 4.5}
    samples = [{"fingerprint": "f1", "message": "boom", "count": 1}]
    kw = {"buckets": buckets, "counters": counters, "error_samples": samples}
    # three batches that share hours and minutes: by time, then another route in the same minutes
    record_batch(tenant, rows_of("checkout", hour, 70, 50, 1, route="/a", **kw))
    record_batch(
        tenant, rows_of("checkout", hour + timedelta(minutes=70), 40, 50, 2, route="/a", **kw)
    )
    record_batch(
        tenant, rows_of("checkout", hour + timedelta(minutes=30), 60, 20, 0, route="/b", **kw)
    )

    def snapshot():
        return (
            sorted(RouteHour.objects.values_list("route", "hour", *rollups.HOUR_VALUES)),
            sorted(ServiceHour.objects.values_list("hour", *rollups.HOUR_VALUES)),
            sorted(
                (slo, resolution, start, round(good, 6), total)
                for slo, resolution, start, good, total in SLIPoint.objects.values_list(
                    "slo_id", "resolution", "start", "good", "total"
                )
            ),
        )

    added = snapshot()
    rollups.recompute_hours(tenant.pk, service.pk, [(hour, hour + timedelta(hours=2))])
    assert snapshot() == added
    (second_hour,) = [r for r in added[1] if r[0] == hour + timedelta(hours=1)]
    assert second_hour[1:3] == (40 * 50 + 30 * 20 + 10 * 50, 40 * 2 + 10 * 1)
