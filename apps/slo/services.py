"""Writes for SLOs: ingestion, services and SLOs, OpenSLO import, settings.

Every write that matters goes through here so the API, the admin and the management commands
share one set of rules. Burn-rate evaluation lives in apps/slo/alerting.py, canary releases in
apps/slo/releases.py, the daily report in apps/slo/reports.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record_event
from apps.slo import openslo, rollups, windows
from apps.slo.ingest import Row
from apps.slo.models import SLO, Service, SLIType, SLOSettings
from apps.tenancy.models import Tenant

SERVICE_FIELDS = (
    "display_name",
    "description",
    "owner",
    "no_data_minutes",
    "canary_policy",
    "report_ratios",
    "counter_aggregates",
)
SLO_FIELDS = (
    "display_name",
    "description",
    "sli_type",
    "objective_percent",
    "window_days",
    "latency_threshold_ms",
    "good_counter",
    "total_counter",
    "alerting",
    "min_events",
    "enabled",
)
COUNTER_AGGREGATES = ("sum", "last", "mean")
# What the SLI points are computed from: a change rebuilds them.
SLI_DEFINITION = ("service_id", "sli_type", "latency_threshold_ms", "good_counter", "total_counter")


class UnknownServices(Exception):
    def __init__(self, names: list[str]):
        self.names = names
        super().__init__(
            "Unknown service(s): "
            + ", ".join(names)
            + ". Create them first (admin, API or OpenSLO import), or enable auto-create in "
            "the tenant's SLO settings."
        )


@dataclass
class BatchResult:
    rows: int
    services: list[str]
    created_services: list[str] = field(default_factory=list)


def settings_for(tenant: Tenant) -> SLOSettings:
    found = SLOSettings.objects.for_tenant(tenant).first()
    return found or SLOSettings(tenant=tenant)


def raw_retention() -> timedelta:
    return timedelta(days=settings.SLO_RAW_RETENTION_DAYS)


def record_batch(tenant: Tenant, rows: list[Row]) -> BatchResult:
    """Store a validated batch atomically: all rows and their rollups, or nothing."""
    names = sorted({row.service for row in rows})
    with transaction.atomic():
        services = list(
            Service.objects.for_tenant(tenant)
            .filter(name__in=names)
            .order_by("pk")
            .select_for_update()
        )
        known = {s.name: s for s in services}
        missing = [name for name in names if name not in known]
        created: list[str] = []
        if missing:
            if not settings_for(tenant).auto_create_services:
                raise UnknownServices(missing)
            for name in missing:
                known[name] = _create_service(tenant, {"name": name})
                created.append(name)
        rollups.store(tenant.pk, rows, {name: s.pk for name, s in known.items()})
        latest: dict[str, datetime] = {}
        for row in rows:
            if row.service not in latest or row.minute > latest[row.service]:
                latest[row.service] = row.minute
        for name, minute in latest.items():
            service = known[name]
            if service.last_data_at is None or minute > service.last_data_at:
                Service._base_manager.filter(pk=service.pk).update(last_data_at=minute)
    return BatchResult(rows=len(rows), services=names, created_services=created)


def clean_service_fields(data: dict) -> dict[str, str]:
    errors: dict[str, str] = {}
    ratios = data.get("report_ratios", [])
    if not isinstance(ratios, list) or not all(
        isinstance(r, dict)
        and set(r) == {"name", "good", "total"}
        and all(isinstance(v, str) and v for v in r.values())
        for r in ratios
    ):
        errors["report_ratios"] = 'A list of {"name", "good", "total"} with counter names.'
    aggregates = data.get("counter_aggregates", {})
    if not isinstance(aggregates, dict) or any(
        v not in COUNTER_AGGREGATES for v in aggregates.values()
    ):
        errors["counter_aggregates"] = "Counter name to one of sum, last, mean."
    policy = data.get("canary_policy", {})
    if policy:
        from apps.slo.canary import CanaryPolicy

        try:
            CanaryPolicy.from_dict(policy)
        except (ValueError, TypeError) as exc:
            errors["canary_policy"] = str(exc)
    return errors


def _create_service(tenant: Tenant, data: dict) -> Service:
    service = Service(tenant=tenant, **data)
    service.full_clean(exclude=["tenant"])
    service.save(audit_action="service.created")
    return service


def save_service(tenant: Tenant, data: dict, *, service: Service | None = None) -> Service:
    """Create or update a service; ValidationError names the field."""
    errors = clean_service_fields(data)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        if service is None:
            return _create_service(tenant, data)
        for name in SERVICE_FIELDS:
            if name in data:
                setattr(service, name, data[name])
        service.version += 1
        service.full_clean(exclude=["tenant"])
        service.save()
        return service


def clean_slo(slo: SLO) -> None:
    """Model validation plus the rules that span fields; raises ValidationError by field."""
    errors: dict[str, str] = {}
    try:
        slo.full_clean(exclude=["tenant", "service"])
    except ValidationError as exc:
        errors.update({k: " ".join(v) for k, v in exc.message_dict.items()})
    if slo.sli_type == SLIType.LATENCY and not (slo.latency_threshold_ms or 0) > 0:
        errors["latency_threshold_ms"] = "A latency SLO needs a threshold in ms."
    if slo.sli_type == SLIType.RATIO and not (slo.good_counter and slo.total_counter):
        errors["good_counter"] = "A ratio SLO names its good and total counters."
    try:
        windows.validate_alerting(slo.alerting or {})
    except windows.AlertingError as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)


def save_slo(slo: SLO) -> SLO:
    """Create or update an SLO and rebuild its SLI points from the raw minutes kept, so a new
    or changed objective is judged on the data already there."""
    if slo.objective_percent is not None and not isinstance(slo.objective_percent, Decimal):
        slo.objective_percent = Decimal(str(slo.objective_percent))
    clean_slo(slo)
    with transaction.atomic():
        definition_changed = True
        if slo.pk:
            before = SLO._base_manager.filter(pk=slo.pk).values(*SLI_DEFINITION).first()
            definition_changed = before != {f: getattr(slo, f) for f in SLI_DEFINITION}
            slo.version += 1
        slo.save()
        if definition_changed:
            rollups.rebuild_sli(slo, timezone.now() - raw_retention())
    return slo


@dataclass
class ImportResult:
    services_created: list[str]
    services_updated: list[str]
    slos_created: list[str]
    slos_updated: list[str]
    unsupported: list[openslo.Problem]


def import_openslo(tenant: Tenant, text: str, *, create_services: bool = True) -> ImportResult:
    """Import services and SLOs from OpenSLO v1 YAML, all or nothing. Unsupported features are
    reported in the result, never silently dropped; malformed input raises OpenSLOError."""
    plan = openslo.parse(text)
    result = ImportResult([], [], [], [], list(plan.unsupported))
    with transaction.atomic():
        services = {s.name: s for s in Service.objects.for_tenant(tenant)}
        for spec in plan.services:
            data = {"display_name": spec.display_name, "description": spec.description}
            if spec.name in services:
                services[spec.name] = save_service(tenant, data, service=services[spec.name])
                result.services_updated.append(spec.name)
            else:
                services[spec.name] = save_service(tenant, {"name": spec.name, **data})
                result.services_created.append(spec.name)
        missing = sorted({s.service for s in plan.slos} - set(services))
        if missing and not create_services:
            raise ValidationError({"service": f"Unknown service(s): {', '.join(missing)}."})
        for name in missing:
            services[name] = save_service(tenant, {"name": name})
            result.services_created.append(name)
        existing = {s.name: s for s in SLO.objects.for_tenant(tenant)}
        for spec in plan.slos:
            slo = existing.get(spec.name) or SLO(tenant=tenant, name=spec.name)
            slo.service = services[spec.service]
            slo.display_name = spec.display_name
            slo.description = spec.description
            slo.sli_type = spec.sli_type
            slo.objective_percent = Decimal(str(spec.objective_percent))
            slo.window_days = spec.window_days
            slo.latency_threshold_ms = spec.latency_threshold_ms
            slo.good_counter = spec.good_counter
            slo.total_counter = spec.total_counter
            (result.slos_updated if slo.pk else result.slos_created).append(spec.name)
            save_slo(slo)
        record_event(
            tenant_id=tenant.pk,
            action="slo.openslo_imported",
            target_type="slo.slo",
            after={
                "services_created": result.services_created,
                "slos_created": result.slos_created,
                "slos_updated": result.slos_updated,
                "unsupported": len(result.unsupported),
            },
        )
    return result


def export_openslo(tenant: Tenant) -> str:
    services = list(Service.objects.for_tenant(tenant))
    slos = list(SLO.objects.for_tenant(tenant).select_related("service"))
    return openslo.export(
        [openslo.ServiceSpec(s.name, s.display_name, s.description) for s in services],
        [
            openslo.SLOSpec(
                name=s.name,
                service=s.service.name,
                sli_type=s.sli_type,
                objective_percent=float(s.objective_percent),
                window_days=s.window_days,
                display_name=s.display_name,
                description=s.description,
                latency_threshold_ms=s.latency_threshold_ms,
                good_counter=s.good_counter,
                total_counter=s.total_counter,
            )
            for s in slos
        ],
    )
