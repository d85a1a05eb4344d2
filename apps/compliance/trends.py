"""Writes for the trend table and retention: daily aggregates per tenant and rule, rebuilt
idempotently from the results, and the batched deletion of what the portal may no longer keep."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Q

from apps.compliance.models import CheckResult, ResultStatus, RuleTrend
from apps.tenancy.models import Tenant


def day_bounds(tenant: Tenant, day: date) -> tuple[datetime, datetime]:
    """The tenant-local calendar day as a UTC-aware half-open range (DST days are 23 or 25 h)."""
    zone = zoneinfo.ZoneInfo(tenant.time_zone)
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def rebuild_day(tenant: Tenant, day: date) -> int:
    """Replace the day's trend rows with fresh aggregates; returns the number of rules.

    compliance rate = passing ÷ evaluated, where suppressed results are not evaluated.
    """
    start, end = day_bounds(tenant, day)
    rows = (
        CheckResult.objects.for_tenant(tenant)
        .filter(created_at__gte=start, created_at__lt=end, suppressed=False)
        .values("rule_id")
        .annotate(
            evaluated=Count("id"),
            passing=Count("id", filter=Q(status=ResultStatus.PASS)),
            violations=Count("id", filter=Q(status=ResultStatus.VIOLATION)),
        )
        .order_by()
    )
    trends = [
        RuleTrend(
            tenant=tenant,
            rule_id=row["rule_id"],
            day=day,
            evaluated=row["evaluated"],
            passing=row["passing"],
            violations=row["violations"],
            compliance_rate=row["passing"] / row["evaluated"] if row["evaluated"] else None,
        )
        for row in rows
    ]
    with transaction.atomic():
        RuleTrend.objects.for_tenant(tenant).filter(day=day).exclude(
            rule_id__in=[t.rule_id for t in trends]
        ).delete()
        RuleTrend.objects.bulk_create(
            trends,
            update_conflicts=True,
            unique_fields=["tenant", "rule", "day"],
            update_fields=["evaluated", "passing", "violations", "compliance_rate", "built_at"],
        )
    return len(trends)
