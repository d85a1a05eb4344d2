"""Deadline reminders (beat, hourly): alerts 7 and 2 days before a request's due date (tier 2)
and when it has passed (tier 1), once each; closing or extending a request resolves them."""

from __future__ import annotations

from datetime import date

from django.db import transaction
from django.utils import timezone

from apps.alerts.services import raise_alert, resolve_alert
from apps.privacy.models import OPEN_STATUSES, PrivacyRequest, Status

ALERT_SOURCE = "privacy"
REMINDERS = ((7, 2, "due in 7 days"), (2, 2, "due in 2 days"), (0, 1, "overdue"))


def _dedup_key(request: PrivacyRequest, label: str) -> str:
    return f"privacy:{request.pk}:{label.replace(' ', '-')}"


def remind_deadlines(today: date | None = None) -> int:
    """Raise the reminders that are due. Each request is re-read under a row lock, so an
    extension made meanwhile (which resets the reminders) is never overwritten."""
    from apps.privacy.services import local_date
    from apps.tenancy.rls import all_tenants_context

    sent = 0
    with all_tenants_context():
        candidates = (
            PrivacyRequest.objects.filter(status__in=OPEN_STATUSES)
            .exclude(status=Status.PAUSED)
            .values_list("pk", flat=True)
        )
        for pk in list(candidates):
            with transaction.atomic():
                request = (
                    PrivacyRequest.objects.select_for_update()
                    .select_related("tenant")
                    .filter(pk=pk, status__in=OPEN_STATUSES)
                    .exclude(status=Status.PAUSED)
                    .first()
                )
                if request is None:
                    continue
                local_today = today or local_date(request.tenant, timezone.now())
                left = (request.due_on - local_today).days
                sent_now = []
                for days, tier, label in REMINDERS:
                    due = left < 0 if days == 0 else left <= days
                    if not due or label in request.reminders_sent:
                        continue
                    raise_alert(
                        request.tenant,
                        source=ALERT_SOURCE,
                        tier=tier,
                        dedup_key=_dedup_key(request, label),
                        title=f"Privacy request {request.pk} ({request.request_type}) {label}",
                        summary=f"Due {request.due_on:%Y-%m-%d} under "
                        f"{request.jurisdiction.upper()}; status {request.status}.",
                        details={"request": request.pk, "due_on": request.due_on.isoformat()},
                    )
                    sent_now.append(label)
                if sent_now:
                    PrivacyRequest.objects.filter(pk=pk).update(
                        reminders_sent=[*request.reminders_sent, *sent_now]
                    )
                    sent += len(sent_now)
    return sent


def resolve_reminders(request: PrivacyRequest) -> None:
    for _days, _tier, label in REMINDERS:
        resolve_alert(request.tenant, _dedup_key(request, label))
