"""Storing a batch and keeping the rollups true.

Rows are upserted (a replay of a series' minute replaces it). The rollups then follow one of two
paths, both under the caller's row lock on each service (`SELECT … FOR UPDATE`), so two batches
of one service never interleave:

- **New minutes only** (the common case: no row of the batch existed before). The batch's own
  sums are added to the stored hour rollups and SLI points: nothing already stored is read back
  but the few hour rows the batch touches.
- **Any replaced row** (a replay or a correction). Every hour the batch touched is recomputed
  from the minute rows it now holds, never incremented: that is what makes a replay idempotent.

Per hour the rollups keep requests, errors, merged buckets, counters as
`{name: {"sum", "n", "last", "at"}}` (n = rows reporting it; last = its value at the latest
minute `at`, summed over the routes reporting that minute) and the top error fingerprints (the
top 20 per hour; a merge can only lose the tail). Per SLO, good and total events per minute, hour
and UTC day (`SLIPoint`), which is all that window queries read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from django.db.models import Q

from apps.slo import bulk, quantiles
from apps.slo.ingest import Row
from apps.slo.models import SLO, MinuteSample, RouteHour, ServiceHour, SLIPoint, SLIType

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TOP_ERRORS_KEPT = 20
MINUTE_COLUMNS = (
    ("tenant_id", "bigint"),
    ("service_id", "bigint"),
    ("route", "text"),
    ("version", "text"),
    ("minute", "timestamptz"),
    ("requests", "bigint"),
    ("errors", "bigint"),
    ("buckets", "jsonb"),
    ("counters", "jsonb"),
    ("error_samples", "jsonb"),
)
HOUR_VALUES = ("requests", "errors", "buckets", "counters", "error_samples")
_VALUE_COLUMNS = (
    ("requests", "bigint"),
    ("errors", "bigint"),
    ("buckets", "jsonb"),
    ("counters", "jsonb"),
    ("error_samples", "jsonb"),
)
ROUTE_HOUR_COLUMNS = (
    ("tenant_id", "bigint"),
    ("service_id", "bigint"),
    ("route", "text"),
    ("hour", "timestamptz"),
    *_VALUE_COLUMNS,
)
SERVICE_HOUR_COLUMNS = (
    ("tenant_id", "bigint"),
    ("service_id", "bigint"),
    ("hour", "timestamptz"),
    *_VALUE_COLUMNS,
)
POINT_COLUMNS = (
    ("tenant_id", "bigint"),
    ("slo_id", "bigint"),
    ("resolution", "text"),
    ("start", "timestamptz"),
    ("good", "float8"),
    ("total", "float8"),
)


class _Agg:
    """Sums of one group of minute rows (or of stored rollups)."""

    __slots__ = ("bucket_sets", "counters", "errors", "requests", "samples")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.bucket_sets: list[dict] = []
        self.counters: dict[str, list] = {}  # name -> [sum, rows, latest minute, value then]
        self.samples: dict[str, list] = {}  # fingerprint -> [count, message]

    def add(self, minute, requests, errors, buckets, counters, samples) -> None:
        self.requests += requests
        self.errors += errors
        if buckets:
            self.bucket_sets.append(buckets)
        for name, value in counters.items():
            self._counter(name, value, 1, minute, value)
        for sample in samples:
            self._sample(sample)

    def absorb(self, requests, errors, buckets, counters, samples) -> None:
        """Add a stored rollup (its counters carry sum, n, last and at)."""
        self.requests += requests
        self.errors += errors
        if buckets:
            self.bucket_sets.append(buckets)
        for name, agg in counters.items():
            at = datetime.fromisoformat(agg["at"]) if agg.get("at") else None
            self._counter(name, agg["sum"], agg["n"], at, agg["last"])
        for sample in samples:
            self._sample(sample)

    def absorb_agg(self, other: _Agg) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.bucket_sets.extend(other.bucket_sets)
        for name, (total, rows, at, last) in other.counters.items():
            self._counter(name, total, rows, at, last)
        for fingerprint, (count, message) in other.samples.items():
            self._sample({"fingerprint": fingerprint, "count": count, "message": message})

    def _counter(self, name, total, rows, at, last) -> None:
        entry = self.counters.get(name)
        if entry is None:
            self.counters[name] = [total, rows, at, last]
            return
        entry[0] += total
        entry[1] += rows
        if at is not None and (entry[2] is None or at > entry[2]):
            entry[2], entry[3] = at, last
        elif at is not None and at == entry[2]:
            entry[3] += last  # the same minute on another route: the gauge sums

    def _sample(self, sample: dict) -> None:
        entry = self.samples.get(sample["fingerprint"])
        if entry is None:
            self.samples[sample["fingerprint"]] = [sample["count"], sample["message"]]
        else:
            entry[0] += sample["count"]

    @property
    def buckets(self) -> dict:
        if len(self.bucket_sets) > 1:
            self.bucket_sets = [quantiles.merge(self.bucket_sets)]
        return self.bucket_sets[0] if self.bucket_sets else {}

    def counter_sums(self) -> dict[str, float]:
        return {name: entry[0] for name, entry in self.counters.items()}

    def values(self) -> tuple:
        counters = {
            name: {
                "sum": total,
                "n": rows,
                "last": last,
                "at": at.isoformat() if at is not None else None,
            }
            for name, (total, rows, at, last) in sorted(self.counters.items())
        }
        top = sorted(self.samples.items(), key=lambda item: (-item[1][0], item[0]))
        samples = [
            {"fingerprint": fp, "count": count, "message": message}
            for fp, (count, message) in top[:TOP_ERRORS_KEPT]
        ]
        return (self.requests, self.errors, self.buckets, counters, samples)


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
    """Upsert the rows, then bring the hour rollups and the SLI points up to date."""
    replaced = bulk.upsert(
        MinuteSample,
        MINUTE_COLUMNS,
        [
            (
                tenant_id,
                service_ids[row.service],
                row.route,
                row.version,
                row.minute,
                row.requests,
                row.errors,
                row.buckets,
                row.counters,
                row.error_samples,
            )
            for row in rows
        ],
        conflict=("service_id", "route", "version", "minute"),
        update=HOUR_VALUES,
        count_existing=True,
    )
    by_service: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_service[service_ids[row.service]].append(row)
    for service_id, service_rows in by_service.items():
        if replaced == 0:
            add_batch(tenant_id, service_id, service_rows)
        else:
            hours = {_hour(row.minute) for row in service_rows}
            recompute_hours(tenant_id, service_id, _ranges(hours, HOUR))


def _aggregate(rows: Iterable[tuple]):
    """(route, minute, requests, errors, buckets, counters, samples) rows into route-hour,
    service-hour and service-minute sums."""
    route_hours: dict[tuple[str, datetime], _Agg] = defaultdict(_Agg)
    service_minutes: dict[datetime, _Agg] = defaultdict(_Agg)
    for route, minute, requests, errors, buckets, counters, samples in rows:
        if minute.tzinfo is not UTC:
            minute = minute.astimezone(UTC)
        route_hours[(route, _hour(minute))].add(
            minute, requests, errors, buckets, counters, samples
        )
        service_minutes[minute].add(minute, requests, errors, buckets, counters, ())
    service_hours: dict[datetime, _Agg] = defaultdict(_Agg)
    for (_, hour), agg in route_hours.items():
        service_hours[hour].absorb_agg(agg)
    return route_hours, service_hours, service_minutes


def add_batch(tenant_id: int, service_id: int, rows: Sequence[Row]) -> None:
    """New minutes only: add the batch's sums to what the rollups already hold."""
    route_hours, service_hours, service_minutes = _aggregate(
        (r.route, r.minute, r.requests, r.errors, r.buckets, r.counters, r.error_samples)
        for r in rows
    )
    hours = _ranges(service_hours, HOUR)
    stored = (
        RouteHour.objects.for_tenant(tenant_id)
        .filter(
            _in_ranges("hour", hours),
            service_id=service_id,
            route__in={route for route, _ in route_hours},
        )
        .values_list("route", "hour", *HOUR_VALUES)
    )
    for route, hour, *values in stored:
        key = (route, hour.astimezone(UTC))
        if key in route_hours:
            route_hours[key].absorb(*values)
    stored = (
        ServiceHour.objects.for_tenant(tenant_id)
        .filter(_in_ranges("hour", hours), service_id=service_id)
        .values_list("hour", *HOUR_VALUES)
    )
    for hour, *values in stored:
        service_hours[hour.astimezone(UTC)].absorb(*values)
    _write_hours(tenant_id, service_id, route_hours, service_hours)
    slos = list(SLO.objects.for_tenant(tenant_id).filter(service_id=service_id))
    if slos:
        store_sli(tenant_id, slos, service_minutes, additive=True)


def recompute_hours(
    tenant_id: int, service_id: int, ranges: Sequence[tuple[datetime, datetime]]
) -> None:
    """Rebuild the hours in `ranges` from the minute rows they hold."""
    minutes = (
        MinuteSample.objects.for_tenant(tenant_id)
        .filter(_in_ranges("minute", ranges), service_id=service_id)
        .values_list("route", "minute", "requests", "errors", *HOUR_VALUES[2:])
        .iterator(chunk_size=5000)
    )
    route_hours, service_hours, service_minutes = _aggregate(minutes)
    _write_hours(tenant_id, service_id, route_hours, service_hours)
    slos = list(SLO.objects.for_tenant(tenant_id).filter(service_id=service_id))
    if slos:
        store_sli(tenant_id, slos, service_minutes)


def _write_hours(tenant_id: int, service_id: int, route_hours: dict, service_hours: dict) -> None:
    bulk.upsert(
        RouteHour,
        ROUTE_HOUR_COLUMNS,
        [
            (tenant_id, service_id, route, hour, *agg.values())
            for (route, hour), agg in route_hours.items()
        ],
        conflict=("service_id", "route", "hour"),
        update=HOUR_VALUES,
    )
    bulk.upsert(
        ServiceHour,
        SERVICE_HOUR_COLUMNS,
        [(tenant_id, service_id, hour, *agg.values()) for hour, agg in service_hours.items()],
        conflict=("service_id", "hour"),
        update=HOUR_VALUES,
    )


def store_sli(
    tenant_id: int,
    slos: Sequence[SLO],
    service_minutes: dict[datetime, _Agg],
    *,
    additive: bool = False,
) -> None:
    """Minute, hour and day points of each SLO for these minutes. Either the minutes are whole
    hours recomputed (points replaced; days re-summed from hours) or they are new minutes
    (`additive`: their events are added to the stored minute, hour and day points)."""
    points: list[tuple] = []
    days: set[datetime] = set()
    for slo in slos:
        hours: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
        day_sums: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for minute, agg in service_minutes.items():
            good, total = sli_counts(slo, agg.requests, agg.errors, agg.buckets, agg.counter_sums())
            points.append((tenant_id, slo.pk, "m", minute, good, total))
            for bucket in (hours[_hour(minute)], day_sums[_day(minute)]):
                bucket[0] += good
                bucket[1] += total
        for hour, (good, total) in hours.items():
            points.append((tenant_id, slo.pk, "h", hour, good, total))
        if additive:
            for day, (good, total) in day_sums.items():
                points.append((tenant_id, slo.pk, "d", day, good, total))
        days.update(day_sums)
    _upsert_points(points, additive=additive)
    if days and not additive:
        _recompute_days(tenant_id, [slo.pk for slo in slos], days)


def _upsert_points(points: list[tuple], *, additive: bool = False) -> None:
    bulk.upsert(
        SLIPoint,
        POINT_COLUMNS,
        points,
        conflict=("slo_id", "resolution", "start"),
        update=("good", "total"),
        additive=additive,
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
            (tenant_id, slo_id, "d", day, good, total)
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
