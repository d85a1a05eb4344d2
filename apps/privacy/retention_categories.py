"""The data categories retention knows: which model, which age field, which rows, the default
keep period, a minimum where something depends on the rows, and a handler where expiring is not
a delete (package files). Each tenant's RetentionPolicy rows start from these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q


@dataclass(frozen=True)
class Category:
    key: str
    model: str
    age_field: str
    description: str
    keep: Callable[[], timedelta]
    scope: Callable[[], Q] | None = None
    # Shortest allowed keep period, where something else depends on the rows.
    minimum: Callable[[], timedelta] | None = None
    expire: Callable[[models.QuerySet], int] | None = None


def _expire_packages(queryset: models.QuerySet) -> int:
    """A package expires: its file is deleted; the request and its evidence stay."""
    paths = list(queryset.values_list("package_path", flat=True))
    for path in paths:
        Path(path).unlink(missing_ok=True)
    queryset.model._base_manager.filter(pk__in=queryset.values("pk")).update(
        package_path="", package_manifest={}
    )
    return len(paths)


def _resolved_violations() -> Q:
    from apps.compliance.models import ViolationStatus

    return Q(status=ViolationStatus.RESOLVED)


def _slo_raw() -> timedelta:
    # One day beyond the raw retention, so an hour at the ingestion limit is never recomputed
    # from a half-purged hour (the SLO ingestion accepts minutes up to SLO_RAW_RETENTION_DAYS).
    return timedelta(days=settings.SLO_RAW_RETENTION_DAYS + 1)


def _slo_rollups() -> timedelta:
    return timedelta(days=settings.SLO_ROLLUP_RETENTION_DAYS)


CATEGORIES: dict[str, Category] = {
    c.key: c
    for c in (
        Category(
            "idempotency-keys",
            "core.IdempotencyRecord",
            "created_at",
            "first responses replayed to a repeated Idempotency-Key",
            keep=lambda: timedelta(hours=24),
            minimum=lambda: timedelta(hours=24),
        ),
        Category(
            "alert-history",
            "alerts.Alert",
            "resolved_at",
            "resolved alerts with their deliveries and acknowledgement links",
            keep=lambda: timedelta(days=30),
        ),
        Category(
            "resolved-violations",
            "compliance.Violation",
            "resolved_at",
            "compliance violations resolved by a later run",
            keep=lambda: timedelta(days=settings.COMPLIANCE_VIOLATION_RETENTION_DAYS),
            scope=_resolved_violations,
        ),
        Category(
            "compliance-trends",
            "compliance.RuleTrend",
            "day",
            "daily compliance trend rows",
            keep=lambda: timedelta(days=settings.COMPLIANCE_TREND_RETENTION_DAYS),
        ),
        Category(
            "privacy-packages",
            "privacy.PrivacyRequest",
            "completed_at",
            "access and portability packages (the ZIP files), after the request completed",
            keep=lambda: timedelta(days=30),
            scope=lambda: ~Q(package_path=""),
            expire=_expire_packages,
        ),
        Category(
            "slo-raw-minutes",
            "slo.MinuteSample",
            "minute",
            "per-minute SLI samples",
            keep=_slo_raw,
            minimum=_slo_raw,
        ),
        Category(
            "slo-minute-points",
            "slo.SLIPoint",
            "start",
            "per-minute SLI points",
            keep=_slo_raw,
            scope=lambda: Q(resolution="m"),
            minimum=_slo_raw,
        ),
        Category(
            "slo-route-hours",
            "slo.RouteHour",
            "hour",
            "hourly per-route rollups",
            keep=_slo_rollups,
        ),
        Category(
            "slo-service-hours",
            "slo.ServiceHour",
            "hour",
            "hourly per-service rollups",
            keep=_slo_rollups,
        ),
        Category(
            "slo-points", "slo.SLIPoint", "start", "hour and day SLI points", keep=_slo_rollups
        ),
        Category(
            "slo-canary-checks",
            "slo.CanaryCheck",
            "minute",
            "per-minute canary checks of releases",
            keep=_slo_rollups,
        ),
    )
}


# Models a tenant may add a policy for, beyond the declared categories' own.
EXTRA_RETAINABLE = ("alerts.Digest",)


def retainable_models() -> set[str]:
    declared = {c.model for c in CATEGORIES.values()} | set(EXTRA_RETAINABLE)
    return {label.lower() for label in declared}
