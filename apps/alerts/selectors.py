"""Reads for alerts: the DLQ figures, the overview tile, channel health."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from apps.alerts.models import Alert, AlertStatus, Delivery

AGE_BUCKETS = (("lt_1h", timedelta(hours=1)), ("lt_24h", timedelta(days=1)))


def dead_letter_stats(tenant) -> dict[str, Any]:
    """Counts by channel and by age (under 1 h, under 24 h, older)."""
    now = timezone.now()
    dead = Delivery.objects.for_tenant(tenant).dead()
    by_channel = [
        {
            "channel_id": row["channel_id"],
            "channel": row["channel__name"],
            "kind": row["channel__kind"],
            "count": row["n"],
            "oldest_dead_at": row["oldest"],
        }
        for row in dead.values("channel_id", "channel__name", "channel__kind")
        .annotate(n=Count("id"), oldest=Min("dead_at"))
        .order_by("channel__name")
    ]
    ages = dead.aggregate(
        total=Count("id"),
        lt_1h=Count("id", filter=Q(dead_at__gte=now - AGE_BUCKETS[0][1])),
        lt_24h=Count("id", filter=Q(dead_at__gte=now - AGE_BUCKETS[1][1])),
        oldest=Min("dead_at"),
    )
    return {
        "total": ages["total"],
        "by_channel": by_channel,
        "by_age": {
            "lt_1h": ages["lt_1h"],
            "1h_to_24h": ages["lt_24h"] - ages["lt_1h"],
            "gt_24h": ages["total"] - ages["lt_24h"],
        },
        "oldest_dead_at": ages["oldest"],
    }


def firing_by_tier(tenant) -> dict[int, int]:
    alerts = Alert.objects.all() if tenant is None else Alert.objects.for_tenant(tenant)
    rows = alerts.filter(status=AlertStatus.FIRING).values("tier").annotate(n=Count("id"))
    return {row["tier"]: row["n"] for row in rows}


def with_delivery_figures(channels: QuerySet, hours: int = 24) -> QuerySet:
    """Channels annotated with `attempts_recent` and `failures_recent` over the last `hours`,
    from the attempt history, in the same query as the channels."""
    recent = Q(deliveries__history__started_at__gte=timezone.now() - timedelta(hours=hours))
    return channels.annotate(
        attempts_recent=Count("deliveries__history", filter=recent),
        failures_recent=Count(
            "deliveries__history", filter=recent & ~Q(deliveries__history__outcome="delivered")
        ),
    )
