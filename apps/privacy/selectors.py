"""Reads of the privacy app: the overview tile's figures."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from apps.privacy.models import (
    OPEN_STATUSES,
    ErasureRecord,
    PrivacyRequest,
    RetentionRun,
    SubjectRestriction,
)
from apps.privacy.services import local_date


def overview(tenant) -> dict:
    requests = PrivacyRequest.objects.for_tenant(tenant)
    by_status = dict(
        requests.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    open_requests = requests.filter(status__in=OPEN_STATUSES)
    today = local_date(tenant, timezone.now())
    nearest = list(open_requests.order_by("due_on", "pk")[:3])
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "open": open_requests.count(),
        "overdue": open_requests.filter(due_on__lt=today).count(),
        "due_in_7_days": open_requests.filter(
            due_on__gte=today, due_on__lte=today + timedelta(days=7)
        ).count(),
        "nearest": nearest,
        "today": today,
        "erasures_30d": requests.filter(erased_at__gte=timezone.now() - timedelta(days=30)).count(),
        "failed_sources": ErasureRecord.objects.for_tenant(tenant)
        .filter(status=ErasureRecord.FAILED)
        .count(),
        "restrictions": SubjectRestriction.objects.for_tenant(tenant)
        .filter(lifted_at__isnull=True)
        .count(),
        "last_retention": RetentionRun.objects.for_tenant(tenant)
        .filter(dry_run=False)
        .order_by("-started_at")
        .first(),
    }
