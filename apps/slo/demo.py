"""Demo SLOs: three services with two days of per-minute data pushed through the ingestion path,
five SLOs (one of them paging: search is burning its budget right now), a healthy canary of the
web service heading for promote, and yesterday's daily report."""

from __future__ import annotations

import math
import random
from datetime import UTC, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone

from apps.slo import alerting, releases, reports, services
from apps.slo.ingest import Row
from apps.slo.models import SLO, Release, Service
from apps.tenancy.models import Tenant

HOURS = 48
ROUTES = {
    "web": ["/", "/cart", "/checkout/pay"],
    "search": ["/search", "/suggest"],
    "billing": ["/invoices"],
}
BOUNDS = (25, 50, 100, 250, 500, 1000, 2500)
MAX_LIVE_MINUTES = 15
LIVE_TASK = "slo demo traffic"


def _buckets(rng: random.Random, requests: int, median_ms: float) -> dict[str, int]:
    """Cumulative counts of a log-normal-ish latency around `median_ms`."""
    buckets, previous = {}, 0
    for bound in BOUNDS:
        share = 1 / (1 + math.exp(-2.2 * math.log(bound / median_ms)))
        count = max(previous, min(requests, round(requests * share + rng.uniform(-0.4, 0.4))))
        buckets[str(bound)] = previous = count
    buckets["+Inf"] = requests
    return buckets


def _rows(now, rng: random.Random, incident_from=None, minutes: int = HOURS * 60) -> list[Row]:
    """Every route's rows for the `minutes` before `now`; search fails 10 % of its requests
    from `incident_from` on (a 20x burn: the page fires)."""
    start = now - timedelta(minutes=minutes)
    rows = []
    for i in range(minutes):
        minute = start + timedelta(minutes=i)
        daily = 0.6 + 0.4 * math.sin((minute.hour - 15) / 24 * 2 * math.pi)
        for service, routes in ROUTES.items():
            for route in routes:
                requests = max(1, int(rng.gauss(120, 10) * daily))
                error_share = 0.0004
                median = 60 if service != "search" else 90
                if service == "search" and incident_from and minute >= incident_from:
                    error_share = 0.10
                errors = sum(1 for _ in range(requests) if rng.random() < error_share)
                counters, samples = {}, []
                if service == "billing":
                    stp_total = requests // 4
                    counters = {
                        "invoices": requests // 4,
                        "stp_total": stp_total,
                        "stp_success": stp_total - (1 if rng.random() < 0.3 else 0),
                        "open_tickets": 12 + (minute.hour % 5),
                        "csat": round(rng.uniform(4.2, 4.8), 2),
                    }
                if errors:
                    samples = [
                        {
                            "fingerprint": f"{service}-upstream-timeout",
                            "message": f"TimeoutError: {service} upstream did not answer in 2s",
                            "count": errors,
                        }
                    ]
                rows.append(
                    Row(
                        service=service,
                        route=route,
                        version="2026.11.22",
                        minute=minute,
                        requests=requests,
                        errors=errors,
                        buckets=_buckets(rng, requests, median),
                        counters=counters,
                        error_samples=samples,
                    )
                )
    return rows


def _canary_rows(now, started, rng: random.Random) -> list[Row]:
    rows = []
    minute = max(
        started.replace(second=0, microsecond=0) + timedelta(minutes=1),
        now - timedelta(minutes=MAX_LIVE_MINUTES),
    )
    while minute < now:
        requests = int(rng.gauss(40, 4))
        rows.append(
            Row(
                service="web",
                route="/checkout/pay",
                version="2026.11.23",
                minute=minute,
                requests=requests,
                errors=0,
                buckets=_buckets(rng, requests, 55),
            )
        )
        minute += timedelta(minutes=1)
    return rows


def load_demo(tenant: Tenant) -> bool:
    if Service.objects.for_tenant(tenant).exists():
        return False
    web = services.save_service(
        tenant, {"name": "web", "display_name": "Web storefront", "owner": "team-web"}
    )
    search = services.save_service(
        tenant, {"name": "search", "display_name": "Search API", "owner": "team-search"}
    )
    billing = services.save_service(
        tenant,
        {
            "name": "billing",
            "display_name": "Billing",
            "owner": "team-billing",
            "report_ratios": [
                {"name": "straight-through processing", "good": "stp_success", "total": "stp_total"}
            ],
            "counter_aggregates": {"open_tickets": "last", "csat": "mean"},
        },
    )
    for service, name, fields in (
        (web, "checkout-availability", {"sli_type": "availability", "objective_percent": "99.9"}),
        (
            web,
            "checkout-latency",
            {"sli_type": "latency", "objective_percent": "99", "latency_threshold_ms": 1000},
        ),
        (search, "search-availability", {"sli_type": "availability", "objective_percent": "99.5"}),
        (
            billing,
            "billing-stp",
            {
                "sli_type": "ratio",
                "objective_percent": "95",
                "good_counter": "stp_success",
                "total_counter": "stp_total",
                "window_days": 28,
            },
        ),
    ):
        fields["objective_percent"] = Decimal(fields["objective_percent"])
        services.save_slo(SLO(tenant=tenant, service=service, name=name, **fields))

    rng = random.Random(20261123)
    now = timezone.now().astimezone(UTC).replace(second=0, microsecond=0)
    rows = _rows(now, rng, incident_from=now - timedelta(minutes=50))
    for index in range(0, len(rows), 10_000):
        services.record_batch(tenant, rows[index : index + 10_000])
    started = now - timedelta(minutes=35, seconds=20)
    releases.start_release(
        tenant,
        web,
        version="2026.11.23",
        baseline_version="2026.11.22",
        canary_weight=Decimal("10"),
        actor="demo",
        now=started,
    )
    services.record_batch(tenant, _canary_rows(now, started, rng))
    # What beat would have done by now: evaluate, check the canary, build yesterday's report.
    alerting.evaluate(now=now + timedelta(seconds=60))
    releases.evaluate_open_releases(now=now + timedelta(seconds=60))
    yesterday = now.astimezone(ZoneInfo(tenant.time_zone)).date() - timedelta(days=1)
    reports.generate(tenant, yesterday)
    _schedule_live_traffic(tenant)
    return True


def _schedule_live_traffic(tenant: Tenant) -> None:
    """Keep `make run` alive: beat pushes the demo's minutes as they pass (demo tenants only;
    the schedule is created here, never by apps/core/schedules.py)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name=LIVE_TASK,
        defaults={
            "task": "slo.demo_traffic",
            "interval": every,
            "kwargs": f'{{"tenant_id": {tenant.pk}}}',
        },
    )


def push_live_minutes(tenant: Tenant, now=None) -> int:
    """The demo's minutes since its last push (at most the last 15): search keeps burning, the
    canary keeps serving while its release is open."""
    now = (now or timezone.now()).astimezone(UTC).replace(second=0, microsecond=0)
    last = (
        (Service.objects.for_tenant(tenant).filter(name__in=ROUTES).order_by("last_data_at"))
        .values_list("last_data_at", flat=True)
        .first()
    )
    if last is None:
        return 0
    minutes = min(MAX_LIVE_MINUTES, int((now - last).total_seconds() // 60) - 1)
    if minutes <= 0:
        return 0
    rng = random.Random(int(now.timestamp()))
    rows = _rows(now, rng, incident_from=now - timedelta(days=1), minutes=minutes)
    release = Release.objects.for_tenant(tenant).filter(closed_at=None).first()
    if release is not None:
        since = max(release.started_at, now - timedelta(minutes=minutes + 1))
        rows += _canary_rows(now, since, rng)
    services.record_batch(tenant, rows)
    return len(rows)
