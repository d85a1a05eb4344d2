"""Reads for flags: lists with their per-environment states, environments, overview figures."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Max, Prefetch, QuerySet, Sum
from django.utils import timezone

from apps.flags.models import (
    ACTIVE_ROLLOUT_STATUSES,
    ChangeStatus,
    Environment,
    Flag,
    FlagChange,
    FlagEvaluationCount,
    FlagKind,
    FlagState,
    RolloutPlan,
)
from apps.tenancy.models import Tenant
from apps.tenancy.roles import Role
from apps.tenancy.selectors import has_role_in_active_tenant

OPERATING_ROLES = (Role.OPERATOR, Role.TENANT_ADMIN)


def can_operate(user, request) -> bool:
    """A superuser, or an operator / tenant admin of the admin's active tenant."""
    return has_role_in_active_tenant(user, request, OPERATING_ROLES)


def can_administer(user, request) -> bool:
    """A superuser, or a tenant admin of the admin's active tenant."""
    return has_role_in_active_tenant(user, request, (Role.TENANT_ADMIN,))


def environments(tenant: Tenant) -> QuerySet[Environment]:
    return Environment.objects.for_tenant(tenant)


def flags_with_states(flags: QuerySet[Flag]) -> QuerySet[Flag]:
    """Flags with `states` prefetched in environment order (one query for all states)."""
    states = FlagState.objects.select_related("environment").order_by("environment__sort_order")
    return flags.prefetch_related(Prefetch("states", queryset=states))


def overview(tenant: Tenant) -> dict[str, int]:
    """The tile's figures: flags changed in 24 h, kill switches engaged, flags on in production."""
    since = timezone.now() - timedelta(hours=24)
    states = FlagState.objects.for_tenant(tenant).filter(flag__archived=False)
    return {
        "flags": Flag.objects.for_tenant(tenant).filter(archived=False).count(),
        "changed_24h": states.filter(updated_at__gte=since).values("flag").distinct().count(),
        "killed": states.filter(killed_at__isnull=False).count(),
        "on_in_production": states.filter(environment__key="production", enabled=True).count(),
        "stale": len(stale_flags(tenant)),
        "pending_changes": FlagChange.objects.for_tenant(tenant)
        .filter(status=ChangeStatus.PENDING)
        .count(),
        "rollouts": RolloutPlan.objects.for_tenant(tenant)
        .filter(status__in=ACTIVE_ROLLOUT_STATUSES)
        .count(),
        "scheduled_changes": FlagChange.objects.for_tenant(tenant)
        .filter(status=ChangeStatus.SCHEDULED)
        .count(),
    }


LIFETIME_DAYS = {
    FlagKind.RELEASE: 40,
    FlagKind.EXPERIMENT: 40,
    FlagKind.OPERATIONAL: 7,
}  # kill switches, permissions and maintenance flags live as long as the system
UNUSED_DAYS = 30


def stale_flags(tenant: Tenant, now: datetime | None = None) -> list[tuple[Flag, list[str]]]:
    """Flags that are potentially stale, each with the reasons (Unleash's and Flagsmith's tests):
    past its kind's expected lifetime; not evaluated for 30 days; or serving one variant to
    every evaluation for 30 days (a finished rollout whose code path can be cleaned up)."""
    now = now or timezone.now()
    window_start = (now - timedelta(days=UNUSED_DAYS)).date()
    flags = list(
        Flag.objects.for_tenant(tenant)
        .filter(archived=False)
        .annotate(last_evaluated=Max("states__last_evaluated_at"))
        .order_by("key")
    )
    counts = (
        FlagEvaluationCount.objects.for_tenant(tenant)
        .filter(day__gte=window_start)
        .values("flag_id", "variant")
        .annotate(total=Sum("count"))
    )
    variants_served: dict[int, set[str]] = {}
    for row in counts:
        if row["total"]:
            variants_served.setdefault(row["flag_id"], set()).add(row["variant"])
    evaluated_before_window = set(
        FlagEvaluationCount.objects.for_tenant(tenant)
        .filter(day__lte=window_start)
        .values_list("flag_id", flat=True)
        .distinct()
    )
    report = []
    for flag in flags:
        reasons = []
        age_days = (now - flag.created_at).days
        lifetime = LIFETIME_DAYS.get(flag.kind)
        if lifetime is not None and age_days > lifetime:
            reasons.append(f"{flag.get_kind_display().lower()} flag {age_days} days old")
        unused_since = flag.last_evaluated or flag.created_at
        if now - unused_since > timedelta(days=UNUSED_DAYS):
            reasons.append(f"not evaluated for {UNUSED_DAYS} days")
        served = variants_served.get(flag.pk, set())
        if len(served) == 1 and flag.pk in evaluated_before_window:
            reasons.append(f"served only {next(iter(served))!r} for {UNUSED_DAYS} days")
        if reasons:
            report.append((flag, reasons))
    return report
