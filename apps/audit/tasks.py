from celery import shared_task

from apps.audit.services import record_checkpoint
from apps.core.taskbase import OpsTask
from apps.tenancy.rls import all_tenants_context


@shared_task(base=OpsTask, name="audit.record_checkpoint")
def record_checkpoint_task(**_kwargs) -> str:
    with all_tenants_context():
        return str(record_checkpoint())
