"""Progressive rollouts: 0 → 5 → 25 → 50 → 100 %, advanced by hand or by beat, halted by signals.

Each stage writes the state's fallthrough as a split `[variant p %, other 100 - p %]` through
services.update_state (validated, audited, published to every process). The feature variant is
always listed first, so flagd's `fractional` gives it the bottom p % of the hash space: raising
p only adds users. A plan is a standing decision, so its stages do not each wait for a change
request; starting, halting and resuming it are audited.

`halt_for_signal(tenant, signal, reason)` is the hook for the SLO app (a burn-rate alert) and for
release tooling (a canary verdict of "rollback"): every active plan that lists the signal in
`halt_on` is halted and stepped back one stage, with a tier-2 alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.flags import services
from apps.flags.models import (
    ACTIVE_ROLLOUT_STATUSES,
    DEFAULT_STAGES,
    FlagState,
    RolloutPlan,
    RolloutStatus,
)
from apps.tenancy import rls
from apps.tenancy.models import Tenant
from opsportal.context import current_actor


class RolloutError(Exception):
    """409: not now (dwell time not over, wrong status), with the reason."""


def _validate(state: FlagState, stages: list, variant: str, other: str, dwell: int) -> None:
    errors: dict[str, list[str]] = {}
    variants = state.flag.variants
    if variant not in variants:
        errors["variant"] = [f"No variant {variant!r} in this flag."]
    if other not in variants or other == variant:
        errors["other_variant"] = ["Another variant of this flag."]
    if (
        not isinstance(stages, list)
        or len(stages) < 2
        or any(isinstance(p, bool) or not isinstance(p, int) for p in stages)
        or any(not 0 <= p <= 100 for p in stages)
        or any(b <= a for a, b in pairwise(stages))
        or stages[-1] != 100
    ):
        errors["stages"] = ["Whole percentages, strictly increasing, ending at 100."]
    if not isinstance(dwell, int) or dwell < 0:
        errors["min_dwell_minutes"] = ["Zero or more minutes."]
    if errors:
        raise services.FlagError(errors)


def _serve(plan: RolloutPlan, *, turn_on: bool = False) -> None:
    """Write the stage's split. Only starting a plan turns the flag on: a plan never undoes a
    kill switch or an operator who turned the flag off."""
    state = FlagState.objects.select_for_update().select_related("flag").get(pk=plan.state_id)
    percentage = plan.percentage
    split = [
        {"variant": plan.variant, "weight": percentage},
        {"variant": plan.other_variant, "weight": 100 - percentage},
    ]
    changes: dict = {"fallthrough": {"split": split}}
    if turn_on:
        changes["enabled"] = True
    services.update_state(
        state,
        changes=changes,
        expected_version=state.version,
        audit_action="flag_state.rollout_stage",
    )


@transaction.atomic
def start_rollout(
    state: FlagState,
    *,
    stages: list[int] | None = None,
    variant: str = "on",
    other_variant: str = "off",
    min_dwell_minutes: int = 60,
    auto_advance: bool = False,
    halt_on: list[str] | None = None,
    now: datetime | None = None,
) -> RolloutPlan:
    stages = list(DEFAULT_STAGES) if stages is None else stages
    _validate(state, stages, variant, other_variant, min_dwell_minutes)
    if not isinstance(halt_on or [], list) or not all(isinstance(s, str) for s in halt_on or []):
        raise services.FlagError({"halt_on": ["A list of signal names."]})
    plan = RolloutPlan(
        tenant_id=state.tenant_id,
        state=state,
        variant=variant,
        other_variant=other_variant,
        stages=stages,
        stage_started_at=now or timezone.now(),
        min_dwell_minutes=min_dwell_minutes,
        auto_advance=auto_advance,
        halt_on=halt_on or [],
        created_by_label=current_actor().label,
    )
    try:
        with transaction.atomic():
            plan.save(audit_action="rollout.started")
    except IntegrityError as exc:
        raise RolloutError("This flag already has an active rollout in this environment.") from exc
    _serve(plan, turn_on=True)
    return plan


def _locked(plan: RolloutPlan) -> RolloutPlan:
    return RolloutPlan.objects.select_for_update().get(pk=plan.pk)


@transaction.atomic
def advance(plan: RolloutPlan, *, now: datetime | None = None, force: bool = False) -> RolloutPlan:
    """The next stage, once the current one has dwelt long enough (or `force` by an operator)."""
    now = now or timezone.now()
    locked = _locked(plan)
    if locked.status != RolloutStatus.RUNNING:
        raise RolloutError(f"The rollout is {locked.status}; resume it first.")
    ready_at = locked.stage_started_at + timedelta(minutes=locked.min_dwell_minutes)
    if now < ready_at and not force:
        raise RolloutError(
            f"Stage {locked.percentage} % must run until {ready_at:%Y-%m-%d %H:%M} UTC."
        )
    locked.stage_index += 1
    locked.stage_started_at = now
    locked.version += 1
    if locked.stage_index == len(locked.stages) - 1:
        locked.status = RolloutStatus.COMPLETED
    locked.save(audit_action="rollout.advanced")
    _serve(locked)
    return locked


@transaction.atomic
def halt(plan: RolloutPlan, reason: str, *, now: datetime | None = None) -> RolloutPlan:
    """Stop and step back one stage; it stays there until an operator resumes it."""
    locked = _locked(plan)
    if locked.status not in (RolloutStatus.RUNNING, RolloutStatus.PAUSED):
        raise RolloutError(f"The rollout is {locked.status}.")
    locked.stage_index = max(0, locked.stage_index - 1)
    locked.stage_started_at = now or timezone.now()
    locked.status = RolloutStatus.HALTED
    locked.status_reason = reason
    locked.version += 1
    locked.save(audit_action="rollout.halted")
    _serve(locked)
    _alert_halted(locked)
    return locked


@transaction.atomic
def pause(plan: RolloutPlan) -> RolloutPlan:
    locked = _locked(plan)
    if locked.status != RolloutStatus.RUNNING:
        raise RolloutError(f"The rollout is {locked.status}.")
    locked.status = RolloutStatus.PAUSED
    locked.version += 1
    locked.save(audit_action="rollout.paused")
    return locked


@transaction.atomic
def resume(plan: RolloutPlan, *, now: datetime | None = None) -> RolloutPlan:
    locked = _locked(plan)
    if locked.status not in (RolloutStatus.PAUSED, RolloutStatus.HALTED):
        raise RolloutError(f"The rollout is {locked.status}.")
    locked.status = RolloutStatus.RUNNING
    locked.status_reason = ""
    locked.stage_started_at = now or timezone.now()
    locked.version += 1
    locked.save(audit_action="rollout.resumed")
    return locked


@transaction.atomic
def cancel(plan: RolloutPlan) -> RolloutPlan:
    """Stop the plan; the flag keeps serving its current stage until someone changes it."""
    locked = _locked(plan)
    if locked.status not in ACTIVE_ROLLOUT_STATUSES:
        raise RolloutError(f"The rollout is {locked.status}.")
    locked.status = RolloutStatus.CANCELED
    locked.version += 1
    locked.save(audit_action="rollout.canceled")
    return locked


def _alert_halted(plan: RolloutPlan, verb: str = "halted") -> None:
    state = FlagState.objects.select_related("flag").get(pk=plan.state_id)
    services.alert_after_commit(
        state,
        f"flags:rollout-halted:{plan.pk}",
        f"Rollout of {state.flag.key} {verb} at {plan.percentage} %",
        plan.status_reason,
    )


def halt_for_signal(tenant: Tenant, signal: str, reason: str) -> list[RolloutPlan]:
    """The hook for burn-rate alerts and canary verdicts: halt every plan that listens."""
    halted = []
    plans = RolloutPlan.objects.for_tenant(tenant).filter(
        status__in=(RolloutStatus.RUNNING, RolloutStatus.PAUSED)
    )
    for plan in plans:
        if signal in plan.halt_on:
            try:
                halted.append(halt(plan, f"{signal}: {reason}"))
            except (RolloutError, services.FlagError):
                continue  # halted or changed by someone else in between
    return halted


def advance_due(now: datetime | None = None) -> list[RolloutPlan]:
    """Beat, every minute: advance automatic plans whose stage has dwelt long enough."""
    now = now or timezone.now()
    advanced = []
    with rls.all_tenants_context():
        candidates = list(
            RolloutPlan.objects.filter(status=RolloutStatus.RUNNING, auto_advance=True).values_list(
                "pk", "tenant_id", "stage_started_at", "min_dwell_minutes"
            )
        )
    for pk, tenant_id, started, dwell in candidates:
        if now < started + timedelta(minutes=dwell):
            continue
        with rls.tenant_context(tenant_id):
            plan = RolloutPlan.objects.get(pk=pk)
            try:
                advanced.append(advance(plan, now=now))
            except RolloutError:
                continue  # changed status in between
            except services.FlagError as exc:  # the flag moved on: stop the plan, tell someone
                pause_with_alert(plan, f"cannot serve the next stage: {exc}")
    return advanced


@transaction.atomic
def pause_with_alert(plan: RolloutPlan, reason: str) -> None:
    locked = _locked(plan)
    if locked.status != RolloutStatus.RUNNING:
        return
    locked.status = RolloutStatus.PAUSED
    locked.status_reason = reason
    locked.version += 1
    locked.save(audit_action="rollout.paused")
    _alert_halted(locked, verb="paused")


def halt_for_kill(state: FlagState) -> None:
    """The kill switch stops the state's active plan where it is (no step back: the flag is
    off anyway), so no automatic stage turns it on again."""
    for plan in RolloutPlan.objects.filter(
        state=state, status__in=(RolloutStatus.RUNNING, RolloutStatus.PAUSED)
    ):
        plan.status = RolloutStatus.HALTED
        plan.status_reason = "kill switch pulled"
        plan.version += 1
        plan.save(audit_action="rollout.halted")
