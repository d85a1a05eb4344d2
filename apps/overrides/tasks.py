"""Override expiry, run by beat: an approved override past its expiry stops covering at once
(the gate ignores it by time), and this job records the EXPIRED state and refreshes the gates."""

from __future__ import annotations

from celery import shared_task

from apps.core.taskbase import OpsTask
from apps.overrides import services
from apps.tenancy.rls import all_tenants_context


@shared_task(base=OpsTask, name="overrides.expire")
def expire(**_kwargs) -> int:
    with all_tenants_context():
        return services.expire_overrides()
