"""Alert tasks: delivery (on demand and as a sweeper), and the per-minute tick for every tenant."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.alerts import delivery, services
from apps.core.taskbase import OpsTask
from apps.tenancy.models import Tenant
from apps.tenancy.rls import all_tenants_context, tenant_context

logger = logging.getLogger(__name__)


@shared_task(base=OpsTask, name="alerts.deliver")
def deliver(delivery_ids: list[int] | None = None, outbox_id: int | None = None, **_kwargs) -> dict:
    """Send due deliveries, oldest first: as many batches as the ids that triggered the task
    fill (at least one), stopping early when nothing more is due. Those ids are due, so they
    are in these batches or in ones an earlier task is already sending."""
    batches = -(-len(delivery_ids or ()) // delivery.BATCH_SIZE)
    with all_tenants_context():
        return delivery.drain(max_batches=max(1, batches))


@shared_task(base=OpsTask, name="alerts.dispatch_due")
def dispatch_due(**_kwargs) -> dict:
    """Beat's safety net: retries whose fast-path task was lost, and expired leases."""
    with all_tenants_context():
        return delivery.drain(max_batches=20)


@shared_task(base=OpsTask, name="alerts.tick")
def tick(**_kwargs) -> dict:
    """Escalations, batches and summaries for every tenant; one tenant's failure is logged and
    does not stop the others."""
    done: dict[str, int] = {}
    with all_tenants_context():
        tenants = list(Tenant.objects.all())
    for tenant in tenants:
        try:
            with tenant_context(tenant):
                for key, value in services.tick(tenant).items():
                    done[key] = done.get(key, 0) + value
        except Exception:
            logger.exception("alert tick failed for tenant %s", tenant.slug)
    return done
