"""Storing a batch and keeping the rollups true.

Rows are upserted (a replay of a series' minute replaces it). Every hour a batch touched is then
recomputed from the minute rows it now holds, never incremented: recomputation is what makes a
replay idempotent. The caller holds a row lock on each service (`SELECT … FOR UPDATE`), so two
batches for one service cannot recompute an hour from each other's half-written state.

Per hour the rollups keep requests, errors, merged buckets, counters as
`{name: {"sum", "n", "last"}}` (n = minutes reported; last = the value of the latest minute,
summed over routes) and the top error fingerprints. Per SLO, good and total events per minute,
hour and UTC day (`SLIPoint`), which is all that window queries read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from django.db.models import Q

from apps.slo import quantiles
from apps.slo.ingest import Row
from apps.slo.models import (
    SLO,
    MinuteSample,
    RouteHour,
    ServiceHour,
    SLIPoint,
    SLIType,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TOP_ERRORS_KEPT = 20
_UPSERT_BATCH = 2000


class _Agg:
    """Sums of one group of minute rows."""

    __slots__ = ("buckets", "counters", "errors", "requests", "samples")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.buckets: dict[str, float] = {}
        self.counters: dict[str, list] = {}  # name -> [sum, minutes, last minute, last value]
        self.samples: dict[str, list] = {}  # fingerprint -> [count, message]

    def add(self, minute, requests, errors, buckets, counters, samples) -> None:
        self.requests += requests
        self.errors += errors
        if buckets:
            self.buckets = quantiles.merge([self.buckets, buckets]) if self.buckets else buckets
        for name, value in counters.items():
            entry = self.counters.get(name)
            if entry is None:
                self.counters[name] = [value, {minute}, minute, value]
                continue
            entry[0] += value
            entry[1].add(minute)
            if minute > entry[2]:
                entry[2], entry[3] = minute, value
            elif minute == entry[2]:
                entry[3] += value  # the same minute on another route: the gauge sums
        for sample in samples:
            entry = self.samples.get(sample["fingerprint"])
            if entry is None:
                self.samples[sample["fingerprint"]] = [sample["count"], sample["message"]]
            else:
                entry[0] += sample["count"]

    def counters_json(self) -> dict:
        return {
            name: {"sum": s, "n": len(minutes), "last": last}
            for name, (s, minutes, _, last) in sorted(self.counters.items())
        }

    def samples_json(self) -> list[dict]:
        top = sorted(self.samples.items(), key=lambda item: (-item[1][0], item[0]))
        return [
            {"fingerprint": fp, "count": count, "message": message}
            for fp, (count, message) in top[:TOP_ERRORS_KEPT]
        ]


def sli_counts(slo: SLO, requests: float, errors: float, buckets: dict, counters: dict):
    """(good, total) events of one SLO in one group of measurements."""
    if slo.sli_type == SLIType.AVAILABILITY:
        return requests - errors, requests
    if slo.sli_type == SLIType.LATENCY:
        if not buckets:
            return 0.0, 0.0  # no latency measured: no events, rather than all slow
        # Only requests whose latency was measured count (a row without buckets is unknown).
        measured = buckets.get(quantiles.INF_KEY, requests)
        return quantiles.good_below(slo.latency_threshold_ms, buckets), measured
    good, total = counters.get(slo.good_counter), counters.get(slo.total_counter)
    if total is None:
        return 0.0, 0.0
    return min(good or 0.0, total), total


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _ranges(starts: Iterable[datetime], step: timedelta) -> list[tuple[datetime, datetime]]:
    """Adjacent periods merged into [from, to) ranges."""
    ranges: list[list[datetime]] = []
    for start in sorted(set(starts)):
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + step
        else:
            ranges.append([start, start + step])
    return [(a, b) for a, b in ranges]


def _in_ranges(field: str, ranges: Sequence[tuple[datetime, datetime]]) -> Q:
    query = Q()
    for start, end in ranges:
        query |= Q(**{f"{field}__gte": start, f"{field}__lt": end})
    return query


def store(tenant_id: int, rows: Sequence[Row], service_ids: dict[str, int]) -> None:
    """Upsert the rows, then recompute the hours they touched and the SLIs of their services."""
    samples = [
        MinuteSample(
            tenant_id=tenant_id,
            service_id=service_ids[row.service],
            route=row.route,
            version=row.version,
            minute=row.minute,
            requests=row.requests,
            errors=row.errors,
            buckets=row.buckets,
            counters=row.counters,
            error_samples=row.error_samples,
        )
        for row in rows
    ]
    MinuteSample.objects.bulk_create(
        samples,
        batch_size=_UPSERT_BATCH,
        update_conflicts=True,
        unique_fields=["service", "route", "version", "minute"],
        update_fields=["requests", "errors", "buckets", "counters", "error_samples"],
    )
    hours_by_service: dict[int, set[datetime]] = defaultdict(set)
    for sample in samples:
        hours_by_service[sample.service_id].add(_hour(sample.minute))
    for service_id, hours in hours_by_service.items():
        recompute_hours(tenant_id, service_id, _ranges(hours, HOUR))


def recompute_hours(
    tenant_id: int, service_id: int, ranges: Sequence[tuple[datetime, datetime]]
) -> None:
    route_hours: dict[tuple[str, datetime], _Agg] = defaultdict(_Agg)
    service_hours: dict[datetime, _Agg] = defaultdict(_Agg)
    service_minutes: dict[datetime, _Agg] = defaultdict(_Agg)
    minutes = (
        MinuteSample.objects.for_tenant(tenant_id)
        .filter(_in_ranges("minute", ranges), service_id=service_id)
        .values_list(
            "route", "minute", "requests", "errors", "buckets", "counters", "error_samples"
        )
        .iterator(chunk_size=5000)
    )
    for route, minute, requests, errors, buckets, counters, samples in minutes:
        minute = minute.astimezone(UTC)
        hour = _hour(minute)
        route_hours[(route, hour)].add(minute, requests, errors, buckets, counters, samples)
        service_hours[hour].add(minute, requests, errors, buckets, counters, samples)
        service_minutes[minute].add(minute, requests, errors, buckets, counters, ())

    _upsert_hours(
        RouteHour,
        [
            RouteHour(tenant_id=tenant_id, service_id=service_id, route=route, hour=hour)
            for route, hour in route_hours
        ],
        list(route_hours.values()),
        ["service", "route", "hour"],
    )
    _upsert_hours(
        ServiceHour,
        [ServiceHour(tenant_id=tenant_id, service_id=service_id, hour=h) for h in service_hours],
        list(service_hours.values()),
        ["service", "hour"],
    )
    slos = list(SLO.objects.for_tenant(tenant_id).filter(service_id=service_id))
    if slos:
        store_sli(tenant_id, slos, service_minutes)


def _upsert_hours(model, objects: list, aggs: list[_Agg], unique: list[str]) -> None:
    for obj, agg in zip(objects, aggs, strict=True):
        obj.requests, obj.errors = agg.requests, agg.errors
        obj.buckets = agg.buckets
        obj.counters = agg.counters_json()
        obj.error_samples = agg.samples_json()
    model.objects.bulk_create(
        objects,
        batch_size=_UPSERT_BATCH,
        update_conflicts=True,
        unique_fields=unique,
        update_fields=["requests", "errors", "buckets", "counters", "error_samples"],
    )


def store_sli(tenant_id: int, slos: Sequence[SLO], service_minutes: dict[datetime, _Agg]) -> None:
    """Minute, hour and day points of each SLO for the minutes given (whole hours)."""
    points: list[SLIPoint] = []
    days: set[datetime] = set()
    for slo in slos:
        hours: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for minute, agg in service_minutes.items():
            counters = {name: entry[0] for name, entry in agg.counters.items()}
            good, total = sli_counts(slo, agg.requests, agg.errors, agg.buckets, counters)
            points.append(
                SLIPoint(
                    tenant_id=tenant_id,
                    slo_id=slo.pk,
                    resolution="m",
                    start=minute,
                    good=good,
                    total=total,
                )
            )
            hour = hours[_hour(minute)]
            hour[0] += good
            hour[1] += total
        for hour, (good, total) in hours.items():
            points.append(
                SLIPoint(
                    tenant_id=tenant_id,
                    slo_id=slo.pk,
                    resolution="h",
                    start=hour,
                    good=good,
                    total=total,
                )
            )
            days.add(_day(hour))
    _upsert_points(points)
    if days:
        _recompute_days(tenant_id, [slo.pk for slo in slos], days)


def _upsert_points(points: list[SLIPoint]) -> None:
    SLIPoint.objects.bulk_create(
        points,
        batch_size=_UPSERT_BATCH,
        update_conflicts=True,
        unique_fields=["slo", "resolution", "start"],
        update_fields=["good", "total"],
    )


def _recompute_days(tenant_id: int, slo_ids: list[int], days: set[datetime]) -> None:
    sums: dict[tuple[int, datetime], list[float]] = defaultdict(lambda: [0.0, 0.0])
    rows = (
        SLIPoint.objects.for_tenant(tenant_id)
        .filter(_in_ranges("start", _ranges(days, DAY)), slo_id__in=slo_ids, resolution="h")
        .values_list("slo_id", "start", "good", "total")
    )
    for slo_id, start, good, total in rows:
        entry = sums[(slo_id, _day(start.astimezone(UTC)))]
        entry[0] += good
        entry[1] += total
    _upsert_points(
        [
            SLIPoint(
                tenant_id=tenant_id,
                slo_id=slo_id,
                resolution="d",
                start=day,
                good=good,
                total=total,
            )
            for (slo_id, day), (good, total) in sums.items()
        ]
    )


def rebuild_sli(slo: SLO, since: datetime) -> None:
    """Recompute one SLO's points from the raw minutes kept (after it is created or changed)."""
    SLIPoint.objects.for_tenant(slo.tenant_id).filter(slo=slo).delete()
    rows = (
        MinuteSample.objects.for_tenant(slo.tenant_id)
        .filter(service_id=slo.service_id, minute__gte=since)
        .values_list("minute", "requests", "errors", "buckets", "counters")
        .iterator(chunk_size=5000)
    )
    service_minutes: dict[datetime, _Agg] = defaultdict(_Agg)
    for minute, requests, errors, buckets, counters in rows:
        minute = minute.astimezone(UTC)
        service_minutes[minute].add(minute, requests, errors, buckets, counters, ())
    if service_minutes:
        store_sli(slo.tenant_id, [slo], service_minutes)
