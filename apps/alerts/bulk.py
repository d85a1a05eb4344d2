"""Raising many alerts at once (`services.raise_alerts`): one transaction, the same result per
alert as `raise_alert` called for each in turn, with the common case written in bulk.

The common case is a key with no open alert, raised once in the call, under a policy without a
threshold (every default policy): it becomes one row of a multi-row INSERT, its `alert.raised`
audit event is appended as `Alert.save` would append it, and, when its policy notifies at once,
its deliveries join one multi-row INSERT, with one outbox message per engine batch
(`delivery.BATCH_SIZE` deliveries). Everything else takes `raise_alert`'s own path
(`services._raise_one`), in input order, after the bulk part: a key that is already open (a
dedup hit, perhaps a repeat), the second raise of a key within the call, and tiers whose policy
has a threshold (whether it is reached depends on the alerts raised before). Those cases only
depend on alerts raised earlier in the call or before it, never on the bulk part's other alerts,
so every result is the same; only the order of ids and audit events differs (bulk part first).

Concurrency, as in `raise_alert`: the open alerts of the call's keys are locked first (in id
order); the bulk INSERT runs in a savepoint with its rows in key order (two concurrent calls
then wait on each other instead of deadlocking), and if another transaction opened one of its
keys meanwhile, the partial unique index makes it fail, the savepoint is rolled back and the
call starts over, folding into the winner's alert (after three tries, every alert takes the
per-alert path). The bulk part's alert rows are written before the tenant's audit chain is
locked, the same order as `raise_alert`'s. (A key of a threshold tier is inserted by the
per-alert path after that: a concurrent `raise_alert` of the same new key at that moment can
deadlock with the call; PostgreSQL then aborts one of the two, which raises and writes nothing.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.alerts import delivery, policies
from apps.alerts.metrics import ALERTS_RAISED
from apps.alerts.models import Alert, AlertStatus, Channel, Delivery, Policy, Purpose
from apps.alerts.services import (
    AlertSpec,
    RaiseResult,
    _raise_one,
    channels_for,
    delivery_rows,
    kinds_for,
    new_alert,
    notified_at_once,
)
from apps.audit.models import snapshot
from apps.audit.services import Change, record_events
from apps.core.services import enqueue
from apps.tenancy.models import Tenant

SPEC_FIELDS = frozenset(field.name for field in dataclasses.fields(AlertSpec))
REQUIRED = {"source": "", "tier": None, "dedup_key": "", "title": ""}  # missing: a clear error


def raise_alerts(
    tenant: Tenant, alerts: Iterable[Mapping[str, Any]], *, now: datetime | None = None
) -> list[RaiseResult]:
    specs = _clean(list(alerts))
    if not specs:
        return []
    now = now or timezone.now()
    tier_policies = {tier: policies.policy_for(tenant, tier) for tier in {s.tier for s in specs}}
    with transaction.atomic():
        for _ in range(3):
            results = _raise_in_bulk(tenant, specs, tier_policies, now)
            if results is not None:
                return results
        # Keys kept being opened concurrently: take raise_alert's path for every alert.
        return [_raise_one(tenant, s, tier_policies[s.tier], now) for s in specs]


def _clean(items: list[Mapping[str, Any]]) -> list[AlertSpec]:
    """Validate every alert before anything is written; errors are keyed "<index>.<field>"."""
    specs: list[AlertSpec] = []
    errors: dict[str, Any] = {}
    for index, item in enumerate(items):
        unknown = set(item) - SPEC_FIELDS
        if unknown:
            raise TypeError(f"alert {index}: unexpected fields {', '.join(sorted(unknown))}")
        try:
            specs.append(AlertSpec.clean(**{**REQUIRED, **item}))
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors[f"{index}.{name}"] = messages
    if errors:
        raise ValidationError(errors)
    return specs


def _raise_in_bulk(
    tenant: Tenant, specs: list[AlertSpec], tier_policies: dict[int, Policy], now: datetime
) -> list[RaiseResult] | None:
    """One try; None if a key was opened concurrently (nothing of this try is left)."""
    keys = {s.dedup_key for s in specs}
    open_keys = set(
        Alert.objects.for_tenant(tenant)
        .select_for_update()
        .filter(dedup_key__in=keys)
        .exclude(status=AlertStatus.RESOLVED)
        .order_by("id")
        .values_list("dedup_key", flat=True)
    )
    in_bulk: list[int] = []
    one_by_one: list[int] = []
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        policy = tier_policies[spec.tier]
        if spec.dedup_key in open_keys or spec.dedup_key in seen or policy.threshold_count > 1:
            one_by_one.append(index)
        else:
            in_bulk.append(index)
        seen.add(spec.dedup_key)
    created = {i: new_alert(tenant, specs[i], tier_policies[specs[i].tier], now) for i in in_bulk}
    if created:
        try:
            with transaction.atomic():
                Alert.objects.bulk_create(sorted(created.values(), key=lambda a: a.dedup_key))
        except IntegrityError:
            return None  # raised concurrently with one of these keys: start over
    results: list[RaiseResult | None] = [None] * len(specs)
    _audit_raised(tenant.pk, [created[i] for i in in_bulk])
    for index in in_bulk:
        ALERTS_RAISED.labels(str(specs[index].tier), specs[index].source).inc()
    sent = _notify_created(tenant, [created[i] for i in in_bulk], tier_policies)
    for index in in_bulk:
        results[index] = RaiseResult(created[index], True, sent.get(created[index].pk, 0))
    for index in one_by_one:
        spec = specs[index]
        results[index] = _raise_one(tenant, spec, tier_policies[spec.tier], now)
    return results


def _audit_raised(tenant_id: int, alerts: list[Alert]) -> None:
    """The `alert.raised` events of alerts inserted in bulk, the same events
    `Alert.save(audit_action="alert.raised")` appends for each, in one append."""
    record_events(
        tenant_id=tenant_id,
        changes=[Change.of("alert.raised", alert, after=snapshot(alert)) for alert in alerts],
    )


def _notify_created(
    tenant: Tenant, alerts: list[Alert], tier_policies: dict[int, Policy]
) -> dict[int, int]:
    """The trigger deliveries of new alerts whose policy notifies at once (what
    `services._first_notification` sends for them): one INSERT, one outbox message per
    engine batch. Returns the number of deliveries per alert id."""
    channels: dict[tuple[str, ...], list[Channel]] = {}
    rows: list[Delivery] = []
    now = timezone.now()
    for alert in alerts:
        policy = tier_policies[alert.tier]
        if not notified_at_once(policy):
            continue  # waits for its batch or summary (the tick sends those)
        kinds = tuple(kinds_for(alert, policy))
        if kinds not in channels:
            channels[kinds] = channels_for(tenant.pk, list(kinds))
        rows += delivery_rows(tenant.pk, channels[kinds], Purpose.TRIGGER, now, alert=alert)
    if not rows:
        return {}
    Delivery.objects.bulk_create(rows)
    ids = [row.pk for row in rows]
    per_message = delivery.BATCH_SIZE  # each message: one batch of the engine
    for start in range(0, len(ids), per_message):
        enqueue("alerts.deliver", delivery_ids=ids[start : start + per_message])
    sent: dict[int, int] = {}
    for row in rows:
        sent[row.alert_id] = sent.get(row.alert_id, 0) + 1
    return sent
