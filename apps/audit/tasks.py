import logging

from celery import shared_task

from apps.audit.selectors import verify_chains
from apps.audit.services import record_checkpoint, store_evidence
from apps.core.taskbase import OpsTask
from apps.tenancy.rls import all_tenants_context

logger = logging.getLogger(__name__)


@shared_task(base=OpsTask, name="audit.record_checkpoint")
def record_checkpoint_task(**_kwargs) -> str:
    with all_tenants_context():
        return str(record_checkpoint())


@shared_task(base=OpsTask, name="audit.verify_chains")
def verify_chains_task(**_kwargs) -> bool:
    """Daily proof that the trail is intact, kept as evidence; a broken chain is logged as an
    error for the on-call (docs/operations/audit-chain-broken.md)."""
    from django.utils import timezone

    with all_tenants_context():
        result = verify_chains()
        store_evidence(
            tenant_id=None,
            kind="audit.verification",
            period=timezone.now().date().isoformat(),
            content={"ok": result.ok, "verified": result.verified, "problems": result.problems},
        )
    if not result.ok:
        logger.error("audit chain broken", extra={"problems": result.problems})
    return result.ok
