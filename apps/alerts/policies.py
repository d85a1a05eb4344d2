"""Tier policies: the operating plan's defaults, and the calendar rules they use (business hours
and summary times in the tenant's time zone, DST-safe through zoneinfo)."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta

from apps.alerts.models import DeliveryMode, Policy, SummaryCadence, Tier

# The operating plan's routing; a configured webhook channel (Teams, Opsgenie, a ticketing
# bridge) receives tiers 1 and 2 as well. Every field is editable per tenant in the admin.
DEFAULTS: dict[int, dict] = {
    Tier.CRITICAL: {
        "channel_kinds": ["slack", "email", "pagerduty", "webhook"],
        "mode": DeliveryMode.IMMEDIATE,
        "dedup_window_minutes": 60,
        "escalate_after_minutes": 15,
        "quiet_hours": False,
    },
    Tier.HIGH: {
        "channel_kinds": ["slack", "email", "webhook"],
        "mode": DeliveryMode.BATCHED,
        "batch_interval_minutes": 60,
        "max_batches_per_day": 5,
        "quiet_hours": True,
        "summary_cadence": SummaryCadence.DAILY,
        "summary_time": time(9, 0),
        "escalate_after_minutes": 240,
    },
    Tier.LOW: {
        "channel_kinds": ["email"],
        "mode": DeliveryMode.SUMMARY,
        "summary_cadence": SummaryCadence.WEEKLY,
        "summary_time": time(9, 0),
        "summary_weekday": 0,
        "summary_min_count": 10,
    },
}


def policy_for(tenant, tier: int) -> Policy:
    """The tenant's policy for a tier, created from the defaults the first time it is needed."""
    policy = Policy.objects.for_tenant(tenant).filter(tier=tier).first()
    if policy is None:
        policy, _ = Policy.objects.get_or_create(tenant=tenant, tier=tier, defaults=DEFAULTS[tier])
    return policy


def ensure_default_policies(tenant) -> list[Policy]:
    return [policy_for(tenant, tier) for tier in Tier.values]


def local_zone(tenant) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(tenant.time_zone)


def in_business_hours(policy: Policy, at: datetime, zone: zoneinfo.ZoneInfo) -> bool:
    local = at.astimezone(zone)
    return (
        local.weekday() in policy.business_days
        and policy.business_start <= local.time() < policy.business_end
    )


def next_business_start(policy: Policy, at: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """When held notifications go out: `at` itself inside business hours, else the next
    business day's opening time, as a wall-clock time in the zone (so 09:00 stays 09:00 across
    a DST change)."""
    if in_business_hours(policy, at, zone):
        return at
    local = at.astimezone(zone)
    day: date = local.date()
    if local.time() >= policy.business_start:
        day += timedelta(days=1)
    for _ in range(8):
        if day.weekday() in policy.business_days:
            return datetime.combine(day, policy.business_start, tzinfo=zone)
        day += timedelta(days=1)
    return at  # no business day configured: never hold


SUMMARY_CATCH_UP = timedelta(hours=6)


def summary_due(policy: Policy, at: datetime, zone: zoneinfo.ZoneInfo) -> tuple[str, datetime]:
    """The summary that is due at `at`: its period key and the local time it was scheduled for.

    Daily summaries are scheduled at `summary_time` every day (key: the local date), weekly ones
    at `summary_time` on `summary_weekday` (key: the ISO week). A summary stays due for
    SUMMARY_CATCH_UP after its time, so a beat outage delays it instead of dropping it; the
    period key makes sending it twice impossible. Returns ("", at) when nothing is due.
    """
    if policy.summary_cadence == SummaryCadence.NONE:
        return "", at
    local = at.astimezone(zone)
    day = local.date()
    if policy.summary_cadence == SummaryCadence.WEEKLY:
        day -= timedelta(days=(day.weekday() - policy.summary_weekday) % 7)
    scheduled = datetime.combine(day, policy.summary_time, tzinfo=zone)
    if scheduled > local or local - scheduled > SUMMARY_CATCH_UP:
        return "", at
    if policy.quiet_hours and day.weekday() not in policy.business_days:
        return "", at  # no summary on a day off; the next one covers it
    if policy.summary_cadence == SummaryCadence.WEEKLY:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}", scheduled
    return day.isoformat(), scheduled


def summary_period(policy: Policy, scheduled: datetime) -> tuple[datetime, datetime]:
    """The span a summary covers: the week, or the day, before its scheduled time; with quiet
    hours a daily summary reaches back to the previous business day's (Monday's covers the
    weekend)."""
    if policy.summary_cadence == SummaryCadence.WEEKLY:
        return scheduled - timedelta(days=7), scheduled
    start = scheduled - timedelta(days=1)
    if policy.quiet_hours and policy.business_days:
        while start.weekday() not in policy.business_days:
            start -= timedelta(days=1)
    return start, scheduled
