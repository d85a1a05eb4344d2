"""Change requests (four eyes) and scheduled changes for flag states.

`propose_state_change` is what the API and the admin call: where the environment does not need
approval and no time is given, the change applies at once (services.update_state); otherwise a
`FlagChange` is recorded. A different operator approves it (the requester never can); it then
applies at once or at its `apply_at`, which the `flags.apply_scheduled_changes` beat job (every
minute) honours. A change is validated when proposed and again when applied: if the flag moved on
so that it no longer fits (a removed segment, a removed variant), it is marked FAILED with the
reason and an alert, never half-applied. Every transition is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.flags import services
from apps.flags.models import OPEN_CHANGE_STATUSES, ChangeStatus, FlagChange, FlagState
from apps.tenancy.selectors import same_person
from opsportal.api.locking import check_preconditions
from opsportal.context import Actor, current_actor

_ALLOWED = {
    "approve": {ChangeStatus.PENDING},
    "reject": {ChangeStatus.PENDING},
    "cancel": set(OPEN_CHANGE_STATUSES),
}


class InvalidTransition(Exception):
    """409: the change is not in a state that allows this."""

    def __init__(self, change: FlagChange, action: str):
        allowed = sorted(a for a, states in _ALLOWED.items() if change.status in states)
        super().__init__(
            f"Cannot {action} a change that is {change.status}."
            + (f" Allowed now: {', '.join(allowed)}." if allowed else "")
        )


class FourEyesViolation(Exception):
    """403: the requester may not approve their own change."""


def _same_principal(change: FlagChange, actor: Actor) -> bool:
    return same_person(change.requested_by_user_id, change.requested_by_token_id, actor)


@transaction.atomic
def propose_state_change(
    state: FlagState,
    *,
    changes: dict[str, Any],
    expected_version: int | None,
    if_match: str | None = None,
    apply_at: datetime | None = None,
    note: str = "",
) -> FlagState | FlagChange:
    """Apply now (returns the FlagState) or record a change request (returns the FlagChange)."""
    locked = (
        FlagState.objects.select_for_update().select_related("flag", "environment").get(pk=state.pk)
    )
    check_preconditions(locked, if_match, expected_version)
    if apply_at is not None and apply_at <= timezone.now():
        raise services.FlagError({"apply_at": ["Give a time in the future, or leave it out."]})
    if not locked.environment.requires_approval and apply_at is None:
        return services.update_state(locked, changes=changes, expected_version=locked.version)
    if not changes:
        raise services.FlagError({"changes": ["Nothing to change."]})
    services.check_state_change(locked, changes)
    actor = current_actor()
    change = FlagChange(
        tenant_id=locked.tenant_id,
        state=locked,
        changes=changes,
        apply_at=apply_at,
        note=note,
        status=(
            ChangeStatus.PENDING if locked.environment.requires_approval else ChangeStatus.SCHEDULED
        ),
        requested_by_user_id=actor.user_id,
        requested_by_token_id=actor.token_id,
        requested_by_label=actor.label,
    )
    change.save(audit_action="flag_change.requested")
    return change


def _transition(change: FlagChange, action: str) -> FlagChange:
    locked = FlagChange.objects.select_for_update().select_related("state").get(pk=change.pk)
    if locked.status not in _ALLOWED[action]:
        raise InvalidTransition(locked, action)
    return locked


@transaction.atomic
def approve_change(change: FlagChange, reason: str = "") -> FlagChange:
    locked = _transition(change, "approve")
    actor = current_actor()
    if _same_principal(locked, actor):
        raise FourEyesViolation("Four eyes: someone other than the requester must approve.")
    locked.decided_by_label = actor.label
    locked.decided_at = timezone.now()
    locked.decision_reason = reason
    locked.version += 1
    if locked.apply_at is not None and locked.apply_at > locked.decided_at:
        locked.status = ChangeStatus.SCHEDULED
        locked.save(audit_action="flag_change.approved")
        return locked
    locked.save(audit_action="flag_change.approved")
    return _apply(locked)


@transaction.atomic
def reject_change(change: FlagChange, reason: str) -> FlagChange:
    if len((reason or "").strip()) < 5:
        raise services.FlagError({"reason": ["Say why (at least 5 characters)."]})
    locked = _transition(change, "reject")
    actor = current_actor()
    locked.status = ChangeStatus.REJECTED
    locked.decided_by_label = actor.label
    locked.decided_at = timezone.now()
    locked.decision_reason = reason
    locked.version += 1
    locked.save(audit_action="flag_change.rejected")
    return locked


@transaction.atomic
def cancel_change(change: FlagChange) -> FlagChange:
    locked = _transition(change, "cancel")
    locked.status = ChangeStatus.CANCELED
    locked.decided_by_label = current_actor().label
    locked.decided_at = timezone.now()
    locked.version += 1
    locked.save(audit_action="flag_change.canceled")
    return locked


def _apply(change: FlagChange) -> FlagChange:
    """Apply inside the caller's transaction; a change that no longer fits is marked FAILED."""
    state = FlagState.objects.select_for_update().select_related("flag").get(pk=change.state_id)
    try:
        with transaction.atomic():
            services.update_state(
                state,
                changes=change.changes,
                expected_version=state.version,
                audit_action="flag_state.changed_by_request",
            )
    except services.FlagError as exc:
        change.status = ChangeStatus.FAILED
        change.error = str(exc)
        change.version += 1
        change.save(audit_action="flag_change.failed")
        _alert_failed(change)
        return change
    change.status = ChangeStatus.APPLIED
    change.applied_at = timezone.now()
    change.version += 1
    change.save(audit_action="flag_change.applied")
    return change


def _alert_failed(change: FlagChange) -> None:
    services.alert_after_commit(
        change.state,
        f"flags:change-failed:{change.pk}",
        f"Flag change #{change.pk} could not be applied",
        change.error,
    )


def apply_due(now: datetime | None = None) -> list[FlagChange]:
    """Apply every scheduled change whose time has come (beat, every minute)."""
    from apps.tenancy import rls

    now = now or timezone.now()
    applied = []
    with rls.all_tenants_context():
        due = list(
            FlagChange.objects.filter(status=ChangeStatus.SCHEDULED, apply_at__lte=now)
            .order_by("apply_at", "pk")
            .values_list("pk", "tenant_id")
        )
    for pk, tenant_id in due:
        with rls.tenant_context(tenant_id), transaction.atomic():
            change = FlagChange.objects.select_for_update(skip_locked=True).filter(
                pk=pk, status=ChangeStatus.SCHEDULED
            )
            locked = change.first()
            if locked is not None:
                applied.append(_apply(locked))
    return applied


@transaction.atomic
def kill_or_request(flag, environments) -> tuple[list[FlagState], list[FlagChange]]:
    """The kill switch: immediate where the environment exempts it from approval (the default),
    a change request where an operator chose to make even kill switches wait."""
    immediate, waiting = [], []
    for environment in environments:
        if environment.requires_approval and not environment.kill_switch_exempt:
            waiting.append(environment)
        else:
            immediate.append(environment)
    killed = services.kill(flag, immediate) if immediate else []
    requests = []
    for state in FlagState.objects.filter(flag=flag, environment__in=waiting, enabled=True):
        requests.append(
            propose_state_change(
                state,
                changes={"enabled": False},
                expected_version=state.version,
                note="kill switch",
            )
        )
    return killed, requests
