"""Writes for overrides: request, approve, reject, revoke, expire. Every transition is audited
(before/after) and recomputes the pull request's gate in the same transaction, so a decision
changes the merge gate at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.compliance.models import PullRequest, Violation, ViolationStatus
from apps.compliance.services import refresh_pull_request, warm_gate_after_commit
from apps.overrides.models import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MIN_REASON_LENGTH,
    Override,
    OverrideState,
)
from apps.tenancy.models import Tenant
from apps.tenancy.selectors import same_person
from opsportal.context import Actor, current_actor

_ALLOWED = {
    "approve": {OverrideState.PENDING},
    "reject": {OverrideState.PENDING},
    "revoke": {OverrideState.APPROVED},
    "expire": {OverrideState.APPROVED},
}


class OverrideError(Exception):
    """Bad request (400): a reason too short, an expiry out of range."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {v[0]}" for k, v in errors.items()))
        self.errors = errors


class InvalidTransition(Exception):
    """409: the override is not in a state that allows this."""

    def __init__(self, override: Override, action: str):
        allowed = sorted(state for state, targets in _ALLOWED.items() if override.state in targets)
        super().__init__(
            f"Cannot {action} an override that is {override.state}."
            + (f" Allowed now: {', '.join(allowed)}." if allowed else "")
        )


class FourEyesViolation(Exception):
    """403: the requester may not decide their own override."""


class DuplicateOverride(Exception):
    """409: a pending or approved override already covers this violation."""

    def __init__(self, existing: Override):
        super().__init__(
            f"Override #{existing.pk} ({existing.state}) already covers this violation."
        )
        self.existing = existing


def _validate_request(reason: str, days: int | None) -> int:
    errors: dict[str, list[str]] = {}
    if len((reason or "").strip()) < MIN_REASON_LENGTH:
        errors["reason"] = [f"Explain the exception in at least {MIN_REASON_LENGTH} characters."]
    days = DEFAULT_DAYS if days is None else days
    if not 1 <= days <= MAX_DAYS:
        errors["expires_in_days"] = [f"Between 1 and {MAX_DAYS} days."]
    if errors:
        raise OverrideError(errors)
    return days


def find_violation(
    tenant: Tenant,
    *,
    violation_id: int | None = None,
    repository: str | None = None,
    pull_request: int | None = None,
    fingerprint: str | None = None,
) -> Violation | None:
    violations = Violation.objects.for_tenant(tenant).select_related("pull_request")
    if violation_id is not None:
        return violations.filter(pk=violation_id).first()
    return violations.filter(
        pull_request__repository=repository,
        pull_request__number=pull_request,
        fingerprint=fingerprint,
    ).first()


def request_override(
    violation: Violation,
    reason: str,
    days: int | None = None,
    *,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> Override:
    days = _validate_request(reason, days)
    if violation.status == ViolationStatus.RESOLVED:
        raise OverrideError({"violation": ["This violation is resolved; nothing to override."]})
    actor = actor or current_actor()
    override = Override(
        tenant_id=violation.tenant_id,
        pull_request_id=violation.pull_request_id,
        violation=violation,
        rule_id=violation.rule_id,
        fingerprint=violation.fingerprint,
        reason=reason.strip(),
        requested_days=days,
        requested_by_id=actor.user_id,
        requested_by_token_id=actor.token_id,
        requested_by_label=actor.label[:200],
        requested_at=now or timezone.now(),
    )
    try:
        with transaction.atomic():
            override.save(audit_action="override.requested")
            _bump(violation.pull_request_id)
    except IntegrityError as exc:
        existing = (
            Override.objects.filter(
                pull_request_id=violation.pull_request_id,
                fingerprint=violation.fingerprint,
                state__in=[OverrideState.PENDING, OverrideState.APPROVED],
            )
            .order_by("-pk")
            .first()
        )
        if existing is None:
            raise
        raise DuplicateOverride(existing) from exc
    return override


def _bump(pull_request_id: int) -> None:
    """The gate body lists live overrides and is cached per pull request version."""
    PullRequest.objects.filter(pk=pull_request_id).update(version=F("version") + 1)
    warm_gate_after_commit(pull_request_id)


def is_requester(override: Override, actor: Actor) -> bool:
    """Four eyes: the requester is a person (see tenancy.selectors.same_person)."""
    return same_person(override.requested_by_id, override.requested_by_token_id, actor)


def _transition(
    override: Override,
    action: str,
    *,
    actor: Actor | None,
    now: datetime | None,
    reason: str = "",
) -> Override:
    actor = actor or current_actor()
    now = now or timezone.now()
    with transaction.atomic():
        pull_request = PullRequest.objects.select_for_update().get(pk=override.pull_request_id)
        override = Override.objects.select_for_update().get(pk=override.pk)
        if override.state not in _ALLOWED[action]:
            raise InvalidTransition(override, action)
        if action in ("approve", "reject") and is_requester(override, actor):
            raise FourEyesViolation("The requester of an override cannot decide it (four eyes).")
        if action == "approve":
            override.state = OverrideState.APPROVED
            override.expires_at = now + timedelta(days=override.requested_days)
        elif action == "reject":
            override.state = OverrideState.REJECTED
        elif action == "revoke":
            override.state, override.ended_at = OverrideState.REVOKED, now
        else:
            override.state, override.ended_at = OverrideState.EXPIRED, now
        if action in ("approve", "reject"):
            override.decided_by_id = actor.user_id
            override.decided_by_label = actor.label[:200]
            override.decided_at = now
            override.decision_reason = reason.strip()
        elif reason:
            override.decision_reason = (override.decision_reason + "\n" + reason.strip()).strip()
        override.version += 1
        override.save(audit_action=f"override.{override.state.lower()}")
        if action != "reject":
            refresh_pull_request(pull_request, now=now)
        else:
            _bump(pull_request.pk)
    return override


def approve_override(
    override: Override, *, actor: Actor | None = None, reason: str = "", now=None
) -> Override:
    return _transition(override, "approve", actor=actor, now=now, reason=reason)


def reject_override(
    override: Override, reason: str, *, actor: Actor | None = None, now=None
) -> Override:
    if len((reason or "").strip()) < 5:
        raise OverrideError({"reason": ["Say why the override is rejected."]})
    return _transition(override, "reject", actor=actor, now=now, reason=reason)


def revoke_override(
    override: Override, reason: str = "", *, actor: Actor | None = None, now=None
) -> Override:
    return _transition(override, "revoke", actor=actor, now=now, reason=reason)


def expire_overrides(now: datetime | None = None) -> int:
    """Beat job: approved overrides past their expiry become EXPIRED and their gates are
    recomputed (the decision already ignores them; this makes the stored state agree)."""
    now = now or timezone.now()
    due = list(
        Override.objects.filter(state=OverrideState.APPROVED, expires_at__lte=now).order_by(
            "expires_at"
        )
    )
    for override in due:
        try:
            _transition(override, "expire", actor=Actor(label="system: expiry"), now=now)
        except InvalidTransition:
            continue  # revoked meanwhile
    return len(due)
