"""Platform beat jobs. Every task is idempotent and safe to retry (acks_late)."""

from celery import shared_task

from apps.core import services
from apps.core.taskbase import OpsTask
from apps.tenancy.rls import all_tenants_context


@shared_task(base=OpsTask, name="core.beat_heartbeat")
def beat_heartbeat(**_kwargs) -> None:
    with all_tenants_context():
        services.beat()


@shared_task(base=OpsTask, name="core.drain_outbox")
def drain_outbox(**_kwargs) -> dict:
    with all_tenants_context():
        return services.drain_outbox()


@shared_task(base=OpsTask, name="core.mark_outbox_done")
def mark_outbox_done(outbox_id: int | None = None, note: str = "", **_kwargs) -> None:
    """A small demo task: audits that it ran, carrying the request id of the write behind it."""
    from apps.audit.services import record_event

    with all_tenants_context():
        record_event(
            tenant_id=None,
            action="core.demo_task_ran",
            target_type="core.outboxmessage",
            target_id=outbox_id or "",
            after={"note": note},
        )
