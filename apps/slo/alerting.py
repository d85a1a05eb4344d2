"""The per-minute evaluation: budgets and multiwindow burn-rate alerts for every enabled SLO,
and 'no data' alerts for services that went quiet.

One query sums every window of every SLO (apps/slo/selectors.window_sums); alerts go through
apps/alerts (dedup key `slo:<id>:page|ticket`, `slo-nodata:<service id>`), raised while their
condition holds and resolved when it stops. A page inhibits the ticket of the same SLO, as an
Alertmanager inhibit rule would, and halts the flag rollouts listening to `slo:<name>`.

The evaluation ends at the last complete minute minus `SLO_EVALUATION_LAG_SECONDS`, so a minute
that services have not finished pushing is not judged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.alerts.models import Alert, AlertStatus
from apps.slo import selectors, windows
from apps.slo.models import SLO, Service, SLOStatus
from apps.tenancy import rls

logger = logging.getLogger(__name__)

SOURCE = "slo"


@dataclass
class Evaluation:
    slos: int = 0
    firing: dict[str, int] = field(default_factory=lambda: {"page": 0, "ticket": 0})
    raised: int = 0
    resolved: int = 0
    no_data: int = 0


def alert_key(slo_id: int, severity: str) -> str:
    return f"slo:{slo_id}:{severity}"


def nodata_key(service_id: int) -> str:
    return f"slo-nodata:{service_id}"


def evaluation_end(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return windows.floor_minute(now - timedelta(seconds=settings.SLO_EVALUATION_LAG_SECONDS))


def _window_name(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def burn_rate(good: float, total: float, objective: float) -> float | None:
    if not total:
        return None
    return ((total - good) / total) / (1 - objective)


def evaluate(now: datetime | None = None) -> Evaluation:
    """Evaluate every enabled SLO of every tenant once (beat runs this every minute)."""
    end = evaluation_end(now)
    result = Evaluation()
    with rls.all_tenants_context():
        slos = list(SLO.objects.filter(enabled=True).select_related("service", "tenant"))
        active = set(
            Alert.objects.filter(
                source=SOURCE, status__in=(AlertStatus.FIRING, AlertStatus.ACKNOWLEDGED)
            ).values_list("tenant_id", "dedup_key")
        )
        plans = {}
        for slo in list(slos):
            try:
                plans[slo.pk] = windows.conditions(slo.alerting or {}, slo.window_days)
            except (windows.AlertingError, ValueError, KeyError):
                # Saved around validation (shell, SQL): skip this SLO, not the whole minute.
                logger.error("SLO %s has an invalid alerting document; not evaluated", slo.pk)
                slos.remove(slo)
        spans = set().union(*(windows.alert_windows(c) for c in plans.values())) if plans else set()
        named = {_window_name(span): (end - span, end) for span in spans}
        for days in {slo.window_days for slo in slos}:
            named[f"budget{days}"] = selectors.budget_window(days, end)
        sums = selectors.window_sums([slo.pk for slo in slos], named)
        statuses = []
        actions: list[tuple] = []
        for slo in slos:
            result.slos += 1
            figures = sums.get(slo.pk, {})
            good, total = figures.get(f"budget{slo.window_days}", (0.0, 0.0))
            budget = selectors.Budget(good, total, slo.objective)
            burns = {
                name: burn_rate(*figures.get(name, (0.0, 0.0)), slo.objective)
                for name in named
                if not name.startswith("budget")
            }
            firing = _firing(slo, plans[slo.pk], figures)
            if "page" in firing:
                firing.pop("ticket", None)  # a page inhibits the slower ticket
            statuses.append(
                SLOStatus(
                    tenant_id=slo.tenant_id,
                    slo=slo,
                    evaluated_at=end,
                    window_good=good,
                    window_total=total,
                    budget_remaining=budget.remaining,
                    burn_rates={k: v for k, v in burns.items() if v is not None},
                    firing=sorted(firing),
                )
            )
            for severity in windows.SEVERITIES:
                key = alert_key(slo.pk, severity)
                if severity in firing:
                    result.firing[severity] += 1
                    actions.append(("raise", slo, severity, firing[severity], budget))
                elif (slo.tenant_id, key) in active:
                    actions.append(("resolve", slo, severity, None, budget))
        SLOStatus.objects.bulk_create(
            statuses,
            update_conflicts=True,
            unique_fields=["slo"],
            update_fields=[
                "evaluated_at",
                "window_good",
                "window_total",
                "budget_remaining",
                "burn_rates",
                "firing",
            ],
        )
    handled = {
        (slo.tenant_id, alert_key(slo.pk, sev)) for slo in slos for sev in windows.SEVERITIES
    }
    orphans = [
        (tenant_id, key)
        for tenant_id, key in active
        if key.startswith("slo:") and (tenant_id, key) not in handled
    ]
    for tenant_id, key in orphans:  # the SLO was disabled or deleted: nothing judges it now
        from apps.alerts.services import resolve_alert

        with rls.tenant_context(tenant_id), transaction.atomic():
            resolve_alert(tenant_id, key)
            result.resolved += 1
    for action, slo, severity, condition, budget in actions:
        with rls.tenant_context(slo.tenant_id), transaction.atomic():
            if action == "raise":
                _raise(
                    slo,
                    severity,
                    condition,
                    budget,
                    (slo.tenant_id, alert_key(slo.pk, severity)) in active,
                )
                result.raised += 1
            else:
                from apps.alerts.services import resolve_alert

                resolve_alert(slo.tenant, alert_key(slo.pk, severity))
                result.resolved += 1
    result.no_data = _no_data(end, active)
    return result


def _firing(slo: SLO, conditions: list[windows.Condition], figures: dict) -> dict[str, dict]:
    """{severity: details of the first condition that holds}."""
    firing: dict[str, dict] = {}
    for condition in conditions:
        if condition.severity in firing:
            continue
        long_name, short_name = _window_name(condition.long), _window_name(condition.short)
        long_good, long_total = figures.get(long_name, (0.0, 0.0))
        short_good, short_total = figures.get(short_name, (0.0, 0.0))
        if long_total < slo.min_events or short_total < slo.min_events:
            continue  # the traffic guard: too few events to judge
        long_burn = burn_rate(long_good, long_total, slo.objective)
        short_burn = burn_rate(short_good, short_total, slo.objective)
        if long_burn > condition.factor and short_burn > condition.factor:
            firing[condition.severity] = {
                "condition": condition.name,
                "factor": condition.factor,
                "long_window": long_name,
                "short_window": short_name,
                "long_burn": round(long_burn, 3),
                "short_burn": round(short_burn, 3),
                "long_events": long_total,
                "short_events": short_total,
                "long_error_ratio": round(1 - long_good / long_total, 6),
            }
    return firing


def _raise(slo: SLO, severity: str, details: dict, budget, already_active: bool) -> None:
    from apps.alerts.services import raise_alert

    remaining = budget.remaining
    left = f"{remaining:.1%}" if remaining is not None else "unknown"
    raise_alert(
        slo.tenant,
        source=SOURCE,
        tier=windows.TIER_OF[severity],
        dedup_key=alert_key(slo.pk, severity),
        title=f"SLO {slo.label} burning its error budget ({severity})",
        summary=(
            f"Burn rate {details['long_burn']}x over {details['long_window']} and "
            f"{details['short_burn']}x over {details['short_window']} (threshold "
            f"{details['factor']}x) for {slo.service.label}; objective {slo.objective_percent}% "
            f"over {slo.window_days} days; budget left {left}."
        ),
        details={"slo": slo.name, "service": slo.service.name, "severity": severity, **details},
        links=[{"href": reverse("admin:slo_slo_change", args=[slo.pk]), "text": "SLO"}],
    )
    if severity == "page" and not already_active:
        from apps.flags.rollouts import halt_for_signal

        halt_for_signal(slo.tenant, slo.signal, f"page-level burn rate on {slo.name}")


def _no_data(end: datetime, active: set) -> int:
    """Raise 'no data' for services with enabled SLOs whose data stopped; resolve on return."""
    from apps.alerts.services import raise_alert, resolve_alert

    raised = 0
    with rls.all_tenants_context():
        services = list(
            Service.objects.filter(slos__enabled=True, no_data_minutes__gt=0)
            .exclude(last_data_at=None)
            .select_related("tenant")
            .distinct()
        )
    by_tenant = defaultdict(list)
    for service in services:
        by_tenant[service.tenant_id].append(service)
    for tenant_id, group in by_tenant.items():
        with rls.tenant_context(tenant_id):
            for service in group:
                quiet = end - service.last_data_at
                key = nodata_key(service.pk)
                if quiet > timedelta(minutes=service.no_data_minutes):
                    raise_alert(
                        service.tenant,
                        source=SOURCE,
                        tier=2,
                        dedup_key=key,
                        title=f"No SLI data from {service.label}",
                        summary=(
                            f"No measurements from {service.name} since "
                            f"{service.last_data_at:%Y-%m-%d %H:%M} UTC "
                            f"({int(quiet.total_seconds() // 60)} minutes); its SLOs cannot be "
                            "judged. Check the service's metrics pusher."
                        ),
                        details={"service": service.name, "minutes": quiet.total_seconds() // 60},
                    )
                    raised += 1
                elif (tenant_id, key) in active:
                    resolve_alert(service.tenant, key)
    watched = {(s.tenant_id, nodata_key(s.pk)) for s in services}
    for tenant_id, key in active:
        if key.startswith("slo-nodata:") and (tenant_id, key) not in watched:
            with rls.tenant_context(tenant_id):
                resolve_alert(tenant_id, key)  # no longer watched (SLOs disabled, check off)
    return raised
