"""SLO jobs run by beat: burn-rate evaluation and canary checks every minute, the daily report
(every 15 minutes, sent once per tenant and day), retention daily."""

from __future__ import annotations

from celery import shared_task

from apps.core.taskbase import OpsTask
from apps.slo import alerting, releases, reports


@shared_task(base=OpsTask, name="slo.evaluate_alerts")
def evaluate_alerts(**_kwargs) -> dict:
    result = alerting.evaluate()
    return {"slos": result.slos, "firing": result.firing, "no_data": result.no_data}


@shared_task(base=OpsTask, name="slo.evaluate_releases")
def evaluate_releases(**_kwargs) -> dict:
    return releases.evaluate_open_releases()


@shared_task(base=OpsTask, name="slo.daily_reports")
def daily_reports(**_kwargs) -> int:
    return reports.run_due()


@shared_task(base=OpsTask, name="slo.demo_traffic")
def demo_traffic(tenant_id: int, **_kwargs) -> int:
    """Scheduled by seed_demo only: the demo tenant's services keep sending data."""
    from apps.slo.demo import push_live_minutes
    from apps.tenancy.models import Tenant
    from apps.tenancy.rls import tenant_context

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return 0
    with tenant_context(tenant):
        return push_live_minutes(tenant)
