"""Privacy jobs: deadline reminders and retention (beat); codes, packages, erasures and
rectifications (queued through the outbox)."""

from __future__ import annotations

from celery import shared_task

from apps.core.taskbase import OpsTask
from apps.privacy import services, verification


@shared_task(base=OpsTask, name="privacy.remind_deadlines")
def remind_deadlines(**_kwargs) -> int:
    from apps.privacy.reminders import remind_deadlines as remind

    return remind()


@shared_task(base=OpsTask, name="privacy.issue_code")
def issue_code(request_id: int, **_kwargs) -> bool:
    from apps.privacy.models import PrivacyRequest, Status
    from apps.tenancy.rls import all_tenants_context

    with all_tenants_context():
        request = PrivacyRequest.objects.filter(
            pk=request_id, status=Status.IDENTITY_PENDING
        ).first()
        if request is None:
            return False
        verification.issue_code(request)
    return True


@shared_task(base=OpsTask, name="privacy.build_package", autoretry_for=())
def build_package(request_id: int, **_kwargs) -> str:
    from apps.privacy.models import PrivacyRequest, Status
    from apps.tenancy.rls import all_tenants_context

    with all_tenants_context():
        request = PrivacyRequest.objects.filter(pk=request_id, status=Status.IN_PROGRESS).first()
        if request is None:
            return "not in progress"
        return services.complete_with_package(request).status


@shared_task(base=OpsTask, name="privacy.execute_request", autoretry_for=())
def execute_request(request_id: int, **_kwargs) -> str:
    """An erasure or rectification in progress: run it source by source (apps/privacy/rights)."""
    from apps.privacy import rights
    from apps.privacy.models import PrivacyRequest, Status
    from apps.tenancy.rls import all_tenants_context

    with all_tenants_context():
        request = PrivacyRequest.objects.filter(pk=request_id, status=Status.IN_PROGRESS).first()
        if request is None:
            return "not in progress"
        return rights.execute(request).status


@shared_task(base=OpsTask, name="privacy.enforce_retention")
def enforce_retention(**_kwargs) -> dict:
    from apps.privacy import retention

    return retention.enforce_due()
