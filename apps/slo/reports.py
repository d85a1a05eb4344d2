"""The daily SLO report: yesterday in the tenant's time zone, per service.

The local day is turned into its UTC bounds with zoneinfo, so a 23- or 25-hour day (DST in
America/Edmonton) covers exactly its hours; hourly rollups are read for those hours, SLI sums for
the same bounds. Zones with a half-hour offset would split rollup hours: their hours are counted
in the local day in which they start (see docs/operations/slo-runbook.md).

Building is idempotent: the same data gives the same content (and SHA-256); a rebuild that
changes nothing stores nothing new; a changed rebuild replaces the report and keeps a new evidence
artifact. Sending happens once per date (the alert digest's period key).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.audit.hashing import to_json_value
from apps.audit.services import store_evidence
from apps.slo import quantiles, report_render, selectors
from apps.slo.models import SLO, DailyReport, Service, ServiceHour
from apps.tenancy import rls
from apps.tenancy.models import Tenant

TOP_ERRORS = 5
DEFAULT_KINDS = ["email", "slack"]


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def _ceil_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def _hour_labels(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, str]]:
    """The UTC rollup hours that start within the local day, with their local labels."""
    labels, seen = [], defaultdict(int)
    hour, end = _ceil_hour(start), _ceil_hour(end)
    while hour < end:
        label = hour.astimezone(zone).strftime("%H:%M")
        seen[label] += 1
        labels.append((hour, label if seen[label] == 1 else f"{label} ({seen[label]})"))
        hour += timedelta(hours=1)
    return labels


def _ratio(good: float, total: float) -> float | None:
    return good / total if total else None


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def build(tenant: Tenant, day: date) -> dict:
    """The report's content for one local day (JSON-safe, deterministic for the same data)."""
    zone = ZoneInfo(tenant.time_zone)
    start, end = day_bounds(day, zone)
    labels = _hour_labels(start, end, zone)
    services = list(Service.objects.for_tenant(tenant).order_by("name"))
    slos = list(SLO.objects.for_tenant(tenant).filter(enabled=True).order_by("name"))
    rows = defaultdict(dict)
    for service_id, hour, requests, errors, buckets, counters, samples in (
        ServiceHour.objects.for_tenant(tenant)
        .filter(
            service_id__in=[s.pk for s in services],
            hour__gte=_ceil_hour(start),
            hour__lt=_ceil_hour(end),
        )
        .values_list(
            "service_id", "hour", "requests", "errors", "buckets", "counters", "error_samples"
        )
    ):
        rows[service_id][hour.astimezone(UTC)] = (requests, errors, buckets, counters, samples)
    windows = {"day": (start, end)}
    for days in {slo.window_days for slo in slos}:
        windows[f"budget{days}"] = selectors.budget_window(days, end)
    sums = selectors.window_sums([slo.pk for slo in slos], windows)
    slos_by_service = defaultdict(list)
    for slo in slos:
        slos_by_service[slo.service_id].append(slo)

    report_services = []
    totals = {"services": len(services), "slos": len(slos)}
    status_counts = defaultdict(int)
    for service in services:
        entry = _service_entry(service, rows.get(service.pk, {}), labels)
        entry["slos"] = []
        for slo in slos_by_service.get(service.pk, []):
            figures = sums.get(slo.pk, {})
            day_good, day_total = figures.get("day", (0.0, 0.0))
            budget = selectors.Budget(
                *figures.get(f"budget{slo.window_days}", (0, 0)), slo.objective
            )
            status_counts[budget.status] += 1
            entry["slos"].append(
                {
                    "name": slo.name,
                    "display_name": slo.label,
                    "sli_type": slo.sli_type,
                    "objective_percent": float(slo.objective_percent),
                    "window_days": slo.window_days,
                    "day_sli": _round(_ratio(day_good, day_total)),
                    "budget_remaining": _round(budget.remaining, 4),
                    "status": budget.status,
                }
            )
        report_services.append(entry)
    for status in ("ok", "at_risk", "exhausted", "no_data"):
        totals[f"slos_{status}"] = status_counts[status]
    return {
        "tenant": tenant.slug,
        "tenant_name": tenant.name,
        "date": day.isoformat(),
        "time_zone": tenant.time_zone,
        "hours": len(labels),
        "services": report_services,
        "totals": totals,
    }


def _service_entry(service: Service, hours: dict, labels: list) -> dict:
    requests = errors = 0
    buckets: dict[str, float] = {}
    counters: dict[str, list] = {}  # name -> [sum, n, last value, last hour]
    samples: dict[str, list] = {}
    hourly = []
    for hour, label in labels:
        found = hours.get(hour)
        if found is None:
            hourly.append({"hour": label, "requests": 0, "errors": 0, "p95_ms": None})
            continue
        h_requests, h_errors, h_buckets, h_counters, h_samples = found
        requests += h_requests
        errors += h_errors
        buckets = quantiles.merge([buckets, h_buckets])
        for name, agg in h_counters.items():
            entry = counters.setdefault(name, [0, 0, None])
            entry[0] += agg["sum"]
            entry[1] += agg["n"]
            entry[2] = agg["last"]  # hours come in order: the latest hour's last value wins
        for sample in h_samples:
            entry = samples.setdefault(sample["fingerprint"], [0, sample["message"]])
            entry[0] += sample["count"]
        hourly.append(
            {
                "hour": label,
                "requests": h_requests,
                "errors": h_errors,
                "p95_ms": _round(quantiles.quantile(0.95, h_buckets), 3) if h_buckets else None,
            }
        )
    aggregates = service.counter_aggregates or {}
    volumes, support = [], []
    for name in sorted(counters):
        total, n, last = counters[name]
        how = aggregates.get(name, "sum")
        if how == "sum":
            volumes.append({"name": name, "value": _round(total, 3)})
        else:
            value = last if how == "last" else (total / n if n else None)
            support.append({"name": name, "value": _round(value, 3), "aggregate": how})
    ratios = []
    for spec in service.report_ratios or []:
        good = counters.get(spec["good"], [0])[0]
        total = counters.get(spec["total"], [0])[0]
        ratios.append(
            {
                "name": spec["name"],
                "good": good,
                "total": total,
                "value": _round(_ratio(good, total)),
            }
        )
    top = sorted(samples.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_ERRORS]

    def q(level: float) -> float | None:
        return _round(quantiles.quantile(level, buckets), 3) if buckets else None

    return {
        "name": service.name,
        "display_name": service.label,
        "requests": requests,
        "errors": errors,
        "availability": _round(1 - errors / requests) if requests else None,
        "error_ratio": _round(errors / requests) if requests else None,
        "p50_ms": q(0.5),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "hourly": hourly,
        "ratios": ratios,
        "volumes": volumes,
        "support": support,
        "top_errors": [
            {"fingerprint": fp, "message": message, "count": count} for fp, (count, message) in top
        ],
    }


def _sha256(content: dict) -> str:
    return hashlib.sha256(
        json.dumps(to_json_value(content), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def generate(tenant: Tenant, day: date, *, now: datetime | None = None) -> tuple[DailyReport, bool]:
    """Build and store the report for a local day; (report, changed). Idempotent."""
    now = now or timezone.now()
    content = build(tenant, day)
    digest = _sha256(content)
    with transaction.atomic():
        report = DailyReport.objects.for_tenant(tenant).select_for_update().filter(date=day).first()
        if report is not None and report.sha256 == digest:
            return report, False
        evidence = store_evidence(
            tenant_id=tenant.pk, kind="slo.daily_report", content=content, period=day.isoformat()
        )
        if report is None:
            report = DailyReport(tenant=tenant, date=day)
        report.time_zone = tenant.time_zone
        report.content = content
        report.sha256 = digest
        report.evidence = evidence
        report.generated_at = now
        report.save()
    return report, True


def report_url(report: DailyReport) -> str:
    return settings.PUBLIC_BASE_URL + reverse("admin:slo_dailyreport_change", args=[report.pk])


def send(report: DailyReport, kinds: list[str] | None = None) -> bool:
    """Send through the tenant's channels, once per date."""
    from apps.alerts.services import send_report

    content = {
        **report.content,
        "url": report_url(report),
        "generated_at": report.generated_at.isoformat(),
    }
    headline, lines = report_render.slack_summary(content)
    figures = {
        "title": f"Daily SLO report {report.date:%Y-%m-%d}",
        "summary": headline,
        "lines": lines,
        "text": report_render.email_text(content),
        "html": report_render.email_html(content),
        "url": content["url"],
        "report": report.pk,
    }
    digest = send_report(
        report.tenant, f"slo-report:{report.date:%Y-%m-%d}", figures, kinds or DEFAULT_KINDS
    )
    if digest is None:
        return False
    DailyReport._base_manager.filter(pk=report.pk).update(sent_at=timezone.now())
    return True


def run_due(now: datetime | None = None) -> int:
    """Beat, every 15 minutes: each tenant past its report hour gets yesterday's report built
    and sent once (a late beat still sends it; a repeat sends nothing)."""
    from apps.slo.services import settings_for

    now = now or timezone.now()
    sent = 0
    with rls.all_tenants_context():
        tenants = list(Tenant.objects.all())
    for tenant in tenants:
        with rls.tenant_context(tenant):
            options = settings_for(tenant)
            if not options.report_enabled:
                continue
            local = now.astimezone(ZoneInfo(tenant.time_zone))
            if local.hour < options.report_hour:
                continue
            yesterday = local.date() - timedelta(days=1)
            existing = DailyReport.objects.for_tenant(tenant).filter(date=yesterday).first()
            if existing is not None and existing.sent_at is not None:
                continue
            if not Service.objects.for_tenant(tenant).exists():
                continue
            report, _ = generate(tenant, yesterday, now=now)
            sent += send(report, options.report_channel_kinds or None)
    return sent
