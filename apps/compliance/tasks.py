"""Compliance tasks: alerts for a recorded run, the daily trends, retention, and override expiry
(which lives with the overrides app but changes gates)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from celery import shared_task

from apps.compliance import notifications, selectors, services, trends
from apps.core.taskbase import OpsTask
from apps.tenancy.models import Tenant
from apps.tenancy.rls import all_tenants_context, tenant_context

logger = logging.getLogger(__name__)


@shared_task(base=OpsTask, name="compliance.notify_run")
def notify_run(run_id: int, opened: dict[str, int] | None = None, **_kwargs) -> int:
    with all_tenants_context():
        return notifications.notify_run(run_id, opened or {})


@shared_task(base=OpsTask, name="compliance.refresh_decisions")
def refresh_decisions(tenant_id: int, **_kwargs) -> int:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return 0
    with tenant_context(tenant):
        return services.refresh_decisions(tenant)


@shared_task(base=OpsTask, name="compliance.build_trends")
def build_trends(day: str | None = None, **_kwargs) -> dict[str, int]:
    """Each tenant's yesterday and today (in its own time zone), or the given day. Rebuilding a
    day replaces its rows, so running this again, or late, is harmless."""
    built: dict[str, int] = {}
    with all_tenants_context():
        tenants = list(Tenant.objects.all())
    for tenant in tenants:
        if day:
            days = [date.fromisoformat(day)]
        else:
            today = selectors.today_for(tenant)
            days = [today - timedelta(days=1), today]
        try:
            with tenant_context(tenant):
                built[tenant.slug] = sum(trends.rebuild_day(tenant, d) for d in days)
        except Exception:
            logger.exception("trend build failed for tenant %s", tenant.slug)
    return built
