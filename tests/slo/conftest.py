"""Builders for SLO tests: services, SLOs and per-minute rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.slo import services
from apps.slo.ingest import Row
from apps.slo.models import SLO, Service


def minute_floor(moment: datetime | None = None) -> datetime:
    return (moment or timezone.now()).astimezone(UTC).replace(second=0, microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def payload(
    service: str,
    minute: datetime,
    requests: int,
    errors: int = 0,
    *,
    route: str = "",
    version: str = "",
    buckets: dict | None = None,
    counters: dict | None = None,
    error_samples: list | None = None,
) -> dict:
    row = {
        "service": service,
        "minute": iso(minute),
        "requests": requests,
        "errors": errors,
    }
    if route:
        row["route"] = route
    if version:
        row["version"] = version
    if buckets is not None:
        row["buckets"] = buckets
    if counters is not None:
        row["counters"] = counters
    if error_samples is not None:
        row["error_samples"] = error_samples
    return row


def rows_of(service: str, start: datetime, minutes: int, requests: int, errors: int, **kw):
    """One Row per minute from `start` (validated shape, for services.record_batch)."""
    return [
        Row(
            service=service,
            route=kw.get("route", ""),
            version=kw.get("version", ""),
            minute=start + timedelta(minutes=i),
            requests=requests,
            errors=errors,
            buckets=dict(kw.get("buckets") or {}),
            counters=dict(kw.get("counters") or {}),
            error_samples=list(kw.get("error_samples") or []),
        )
        for i in range(minutes)
    ]


def record(tenant, rows: list[Row], chunk: int = 10_000) -> None:
    for index in range(0, len(rows), chunk):
        services.record_batch(tenant, rows[index : index + chunk])


@pytest.fixture
def make_service(db):
    def make(tenant, name: str = "checkout", **fields) -> Service:
        return services.save_service(tenant, {"name": name, **fields})

    return make


@pytest.fixture
def make_slo(db):
    def make(service: Service, name: str = "checkout-availability", **fields) -> SLO:
        fields.setdefault("sli_type", "availability")
        fields.setdefault("objective_percent", Decimal("99.9"))
        fields.setdefault("window_days", 30)
        return services.save_slo(
            SLO(tenant_id=service.tenant_id, service=service, name=name, **fields)
        )

    return make
