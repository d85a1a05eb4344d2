"""Reads for SLOs: window sums over the SLI rollups, service figures, the per-route page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Sum, Value

from apps.slo import quantiles, windows
from apps.slo.models import SLO, RouteHour, SLIPoint

Window = tuple[datetime, datetime]


def window_sums(
    slo_ids: Sequence[int], named_windows: dict[str, Window]
) -> dict[int, dict[str, tuple[float, float]]]:
    """{slo_id: {window name: (good, total)}}, however many windows and SLOs, in one statement:
    each window is tiled by a few rollup ranges (`windows.cover`), each distinct range is summed
    per SLO once (`UNION ALL` of index range scans), and the windows add their ranges up."""
    if not slo_ids or not named_windows:
        return {}
    tiles = {name: windows.cover(start, end) for name, (start, end) in named_windows.items()}
    ranges = sorted({piece for pieces in tiles.values() for piece in pieces})
    if not ranges:
        return {}
    ids = list(slo_ids)
    parts = [
        SLIPoint.objects.filter(
            slo_id__in=ids, resolution=resolution, start__gte=low, start__lt=high
        )
        .values("slo_id")
        .annotate(piece=Value(index), good=Sum("good"), total=Sum("total"))
        .values_list("slo_id", "piece", "good", "total")
        .order_by()
        for index, (resolution, low, high) in enumerate(ranges)
    ]
    query = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    per_range: dict[tuple[int, int], tuple[float, float]] = {}
    with _without_jit():
        for slo_id, piece, good, total in query:
            per_range[(slo_id, piece)] = (good or 0.0, total or 0.0)
    index_of = {piece: index for index, piece in enumerate(ranges)}
    result: dict[int, dict[str, tuple[float, float]]] = {}
    for slo_id in {key[0] for key in per_range}:
        sums = {}
        for name, pieces in tiles.items():
            good = total = 0.0
            for piece in pieces:
                g, t = per_range.get((slo_id, index_of[piece]), (0.0, 0.0))
                good += g
                total += t
            sums[name] = (good, total)
        result[slo_id] = sums
    return result


@contextmanager
def _without_jit():
    """PostgreSQL's JIT costs this short query more than it saves (half a second of compiling
    for 500 SLOs): off for its transaction only."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        yield


def budget_window(window_days: int, end: datetime) -> Window:
    """The SLO window ending at `end`, starting on the hour (raw minutes are not kept for 30
    days, so the window may be up to 59 minutes shorter than N days)."""
    start = end - timedelta(days=window_days)
    hour = start.replace(minute=0)
    return (hour if hour == start else hour + windows.HOUR), end


@dataclass
class Budget:
    good: float
    total: float
    objective: float

    @property
    def sli(self) -> float | None:
        return self.good / self.total if self.total else None

    @property
    def bad(self) -> float:
        return self.total - self.good

    @property
    def allowed_bad(self) -> float:
        return (1 - self.objective) * self.total

    @property
    def consumed(self) -> float | None:
        """Share of the window's error budget spent (over 1 once overspent)."""
        return self.bad / self.allowed_bad if self.total else None

    @property
    def remaining(self) -> float | None:
        """Share of the window's error budget left (negative once overspent)."""
        consumed = self.consumed
        return None if consumed is None else 1 - consumed

    @property
    def status(self) -> str:
        return budget_status(self.remaining)


AT_RISK_BELOW = 0.25


def budget_status(remaining: float | None) -> str:
    """ok, at_risk (under a quarter of the budget left), exhausted, or no_data."""
    if remaining is None:
        return "no_data"
    if remaining <= 0:
        return "exhausted"
    return "at_risk" if remaining < AT_RISK_BELOW else "ok"


def budgets(slos: Sequence[SLO], end: datetime) -> dict[int, Budget]:
    by_window: dict[int, list[SLO]] = defaultdict(list)
    for slo in slos:
        by_window[slo.window_days].append(slo)
    result = {}
    for days, group in by_window.items():
        sums = window_sums([s.pk for s in group], {"budget": budget_window(days, end)})
        for slo in group:
            good, total = sums.get(slo.pk, {}).get("budget", (0.0, 0.0))
            result[slo.pk] = Budget(good, total, slo.objective)
    return result


@dataclass
class Figures:
    requests: int = 0
    errors: int = 0
    buckets: dict | None = None

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def quantile(self, q: float) -> float | None:
        return quantiles.quantile(q, self.buckets) if self.buckets else None


def _figures(rows: Iterable[tuple[int, int, dict]]) -> Figures:
    figures, sets = Figures(), []
    for requests, errors, buckets in rows:
        figures.requests += requests
        figures.errors += errors
        sets.append(buckets)
    figures.buckets = quantiles.merge(sets)
    return figures


def route_table(service_id: int, tenant_id: int, now: datetime) -> list[dict]:
    """Per route: p95, 5xx rate and volume over the last 24 hours and 7 days (whole hours)."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + windows.HOUR
    day_start, week_start = end - timedelta(hours=24), end - timedelta(days=7)
    per_route: dict[str, dict[str, list]] = defaultdict(lambda: {"day": [], "week": []})
    rows = (
        RouteHour.objects.for_tenant(tenant_id)
        .filter(service_id=service_id, hour__gte=week_start, hour__lt=end)
        .values_list("route", "hour", "requests", "errors", "buckets")
    )
    for route, hour, requests, errors, buckets in rows:
        per_route[route]["week"].append((requests, errors, buckets))
        if hour >= day_start:
            per_route[route]["day"].append((requests, errors, buckets))
    table = []
    for route, periods in per_route.items():
        day, week = _figures(periods["day"]), _figures(periods["week"])
        table.append(
            {
                "route": route or "(all)",
                "day": _route_cell(day),
                "week": _route_cell(week),
            }
        )
    table.sort(key=lambda r: -r["day"]["requests"])
    return table


def _route_cell(figures: Figures) -> dict:
    return {
        "requests": figures.requests,
        "error_ratio": figures.error_ratio,
        "p95_ms": figures.quantile(0.95),
    }


def overview(tenant) -> dict:
    from apps.slo.models import DailyReport, Release, SLOStatus, Verdict

    slos = SLO.objects.for_tenant(tenant).filter(enabled=True).count()
    statuses = list(
        SLOStatus.objects.for_tenant(tenant)
        .filter(slo__enabled=True)
        .values_list("budget_remaining", "firing")
    )
    figures = {"slos": slos, "ok": 0, "at_risk": 0, "exhausted": 0, "no_data": 0}
    figures["pages"] = sum(1 for _, firing in statuses if "page" in firing)
    figures["tickets"] = sum(1 for _, firing in statuses if "ticket" in firing)
    for remaining, _ in statuses:
        figures[budget_status(remaining)] += 1
    open_releases = Release.objects.for_tenant(tenant).filter(closed_at=None)
    figures["canaries"] = open_releases.count()
    figures["rollbacks"] = open_releases.filter(verdict=Verdict.ROLLBACK).count()
    latest = DailyReport.objects.for_tenant(tenant).order_by("-date").first()
    figures["latest_report"] = f"{latest.date:%Y-%m-%d}" if latest else ""
    return figures


def latest_status(slo: SLO):
    """The SLO's latest evaluation, or None before the first one."""
    try:
        return slo.status
    except SLO.status.RelatedObjectDoesNotExist:
        return None
