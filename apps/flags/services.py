"""Writes for flags: environments, flags, per-environment states, segments, keys, kill switches.

Every write validates first (422 naming the field, nothing written), is audited by the models,
honours optimistic locking, and bumps the affected environments' `config_version`, published to
every process after commit (apps/flags/runtime.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.flags import rules as rule_logic
from apps.flags import runtime
from apps.flags.models import (
    DEFAULT_ENVIRONMENTS,
    Environment,
    EnvironmentKey,
    Flag,
    FlagKind,
    FlagState,
    Segment,
    ValueType,
)
from apps.tenancy.authentication import hash_secret
from apps.tenancy.models import Tenant
from apps.tenancy.services import generate_token_secret
from opsportal.api.locking import check_preconditions

BOOLEAN_VARIANTS = {"on": True, "off": False}
FLAG_FIELDS = ("name", "description", "variants", "kind", "owner", "tags", "archived")
STATE_FIELDS = ("enabled", "default_variant", "rules", "fallthrough")


class FlagError(ValueError):
    """422 with a field → messages map."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {v[0]}" for k, v in errors.items()))
        self.errors = errors


class InUse(Exception):
    """409: a segment still referenced by rules, a variant still served."""


def _touch(environment_ids: Iterable[int]) -> None:
    """Bump the environments' configuration version and publish it after commit."""
    ids = sorted(set(environment_ids))
    if not ids:
        return
    Environment._base_manager.filter(pk__in=ids).update(config_version=F("config_version") + 1)

    def publish() -> None:
        # Read after commit: of two writers whose callbacks run out of order, both publish the
        # latest committed version (runtime also rechecks the database every half minute).
        for environment_id, version in Environment._base_manager.filter(pk__in=ids).values_list(
            "pk", "config_version"
        ):
            runtime.publish_version(environment_id, version)

    transaction.on_commit(publish)


def alert_after_commit(state: FlagState, dedup_key: str, title: str, summary: str) -> None:
    """A tier-2 alert about a flag state, raised once the transaction that noticed commits."""
    from apps.alerts.services import raise_alert

    state = FlagState.objects.select_related("flag", "environment", "tenant").get(pk=state.pk)
    transaction.on_commit(
        lambda: raise_alert(
            tenant=state.tenant,
            source="flags",
            tier=2,
            dedup_key=dedup_key,
            title=title,
            summary=summary,
            details={"flag": state.flag.key, "environment": state.environment.key},
        )
    )


@transaction.atomic
def ensure_environments(tenant: Tenant) -> list[Environment]:
    """The tenant's environments, creating development/staging/production the first time."""
    existing = list(Environment.objects.for_tenant(tenant))
    if existing:
        return existing
    created = []
    for order, (key, name, approval) in enumerate(DEFAULT_ENVIRONMENTS):
        environment = Environment(
            tenant=tenant, key=key, name=name, sort_order=order * 10, requires_approval=approval
        )
        environment.save(audit_action="flag_environment.created")
        created.append(environment)
    return created


@transaction.atomic
def create_environment(tenant: Tenant, *, key: str, name: str, **settings: Any) -> Environment:
    """A new environment, in which every flag starts off, serving its current default."""
    environment = Environment(tenant=tenant, key=key, name=name, **settings)
    environment.save(audit_action="flag_environment.created")
    for flag in Flag.objects.for_tenant(tenant):
        default = "off" if "off" in flag.variants else next(iter(flag.variants))
        FlagState(tenant=tenant, flag=flag, environment=environment, default_variant=default).save(
            audit_action="flag_state.created"
        )
    _touch([environment.pk])
    return environment


def _segment_keys(tenant_id: int) -> set[str]:
    """The tenant's segment keys, locked until the write commits, so a segment cannot be
    deleted between validating a rule that uses it and saving that rule."""
    return set(
        Segment.objects.for_tenant(tenant_id).select_for_update().values_list("key", flat=True)
    )


def _validate_flag_fields(values: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    if values.get("value_type") not in ValueType.values:
        errors["value_type"] = [f"One of {', '.join(ValueType.values)}."]
    if values.get("kind") not in FlagKind.values:
        errors["kind"] = [f"One of {', '.join(FlagKind.values)}."]
    tags = values.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        errors["tags"] = ["A list of non-empty strings."]
    if errors:
        raise FlagError(errors)
    try:
        rule_logic.validate_variants(values["value_type"], values.get("variants"))
    except rule_logic.RuleError as exc:
        raise FlagError(exc.errors) from exc


@transaction.atomic
def create_flag(
    tenant: Tenant,
    *,
    key: str,
    name: str,
    value_type: str = ValueType.BOOLEAN,
    variants: dict[str, Any] | None = None,
    default_variant: str | None = None,
    kind: str = FlagKind.RELEASE,
    description: str = "",
    owner: str = "",
    tags: list[str] | None = None,
) -> Flag:
    """A new flag, off in every environment, serving `default_variant` (boolean: "off")."""
    if variants is None and value_type == ValueType.BOOLEAN:
        variants = dict(BOOLEAN_VARIANTS)
    values = {"value_type": value_type, "variants": variants, "kind": kind, "tags": tags or []}
    _validate_flag_fields(values)
    if default_variant is None:
        default_variant = "off" if "off" in variants else next(iter(variants))
    if default_variant not in variants:
        raise FlagError({"default_variant": [f"No variant {default_variant!r} in this flag."]})
    flag = Flag(
        tenant=tenant,
        key=key,
        name=name or key,
        description=description,
        value_type=value_type,
        variants=variants,
        kind=kind,
        owner=owner,
        tags=tags or [],
    )
    try:
        flag.full_clean(validate_unique=False, validate_constraints=False)
    except Exception as exc:  # django ValidationError → 422 naming the field
        raise FlagError(getattr(exc, "message_dict", {"key": [str(exc)]})) from exc
    try:
        with transaction.atomic():
            flag.save(audit_action="flag.created")
    except IntegrityError as exc:
        raise FlagError({"key": [f"A flag {key!r} already exists."]}) from exc
    environments = ensure_environments(tenant)
    for environment in environments:
        FlagState(
            tenant=tenant, flag=flag, environment=environment, default_variant=default_variant
        ).save(audit_action="flag_state.created")
    _touch(e.pk for e in environments)
    return flag


@transaction.atomic
def update_flag(
    flag: Flag,
    *,
    changes: dict[str, Any],
    expected_version: int | None,
    if_match: str | None = None,
) -> Flag:
    locked = Flag.objects.select_for_update().get(pk=flag.pk)
    check_preconditions(locked, if_match, expected_version)
    unknown = set(changes) - set(FLAG_FIELDS)
    if unknown:
        raise FlagError({name: ["Not editable."] for name in sorted(unknown)})
    merged = {
        "value_type": locked.value_type,
        "kind": changes.get("kind", locked.kind),
        "variants": changes.get("variants", locked.variants),
        "tags": changes.get("tags", locked.tags),
    }
    _validate_flag_fields(merged)
    if "variants" in changes:
        check_variants_still_served(locked, merged["variants"])
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.version += 1
    locked.save(audit_action="flag.updated")
    _touch(FlagState.objects.filter(flag=locked).values_list("environment_id", flat=True))
    return locked


def check_state_change(state: FlagState, changes: dict[str, Any]) -> None:
    """FlagError (422, naming the field) unless `changes` leave the state valid: the one check
    behind direct updates, change requests and the admin's inline form."""
    unknown = set(changes) - set(STATE_FIELDS)
    if unknown:
        raise FlagError({name: ["Not editable."] for name in sorted(unknown)})
    merged = {name: changes.get(name, getattr(state, name)) for name in STATE_FIELDS}
    if not isinstance(merged["enabled"], bool):
        raise FlagError({"enabled": ["true or false."]})
    try:
        rule_logic.validate_state(
            variants=state.flag.variants,
            default_variant=merged["default_variant"],
            rules=merged["rules"],
            fallthrough=merged["fallthrough"],
            segments=_segment_keys(state.tenant_id),
        )
    except rule_logic.RuleError as exc:
        raise FlagError(exc.errors) from exc


def check_variants_still_served(flag: Flag, variants: Any) -> None:
    """FlagError unless every environment's state still fits the new variants."""
    segments = _segment_keys(flag.tenant_id)
    for state in FlagState.objects.filter(flag=flag).select_related("environment"):
        try:
            rule_logic.validate_state(
                variants=variants,
                default_variant=state.default_variant,
                rules=state.rules,
                fallthrough=state.fallthrough,
                segments=segments,
            )
        except rule_logic.RuleError as exc:
            raise FlagError(
                {
                    "variants": [
                        f"{state.environment.key} still serves a removed variant "
                        f"({next(iter(exc.errors))})."
                    ]
                }
            ) from exc


@transaction.atomic
def update_state(
    state: FlagState,
    *,
    changes: dict[str, Any],
    expected_version: int | None,
    if_match: str | None = None,
    audit_action: str = "flag_state.updated",
) -> FlagState:
    """Change what a flag serves in one environment: on/off, default, rules, fallthrough."""
    locked = FlagState.objects.select_for_update().select_related("flag").get(pk=state.pk)
    check_preconditions(locked, if_match, expected_version)
    check_state_change(locked, changes)
    for name, value in changes.items():
        setattr(locked, name, value)
    if locked.enabled:
        locked.killed_at = None
    locked.version += 1
    locked.save(audit_action=audit_action)
    _touch([locked.environment_id])
    return locked


@transaction.atomic
def kill(flag: Flag, environments: Iterable[Environment] | None = None) -> list[FlagState]:
    """Turn the flag off in the given environments (all when None), and halt their rollouts so
    that no automatic stage turns it on again. Never waits for approval."""
    from apps.flags import rollouts  # rollouts writes through this module

    states = FlagState.objects.select_for_update().filter(flag=flag)
    if environments is not None:
        states = states.filter(environment__in=list(environments))
    changed = []
    for state in states:
        if state.enabled:
            state.enabled = False
            state.killed_at = timezone.now()
            state.version += 1
            state.save(audit_action="flag.killed")
            changed.append(state)
        rollouts.halt_for_kill(state)
    _touch(state.environment_id for state in changed)
    return changed


def _validate_segment(conditions: Any) -> None:
    try:
        rule_logic.validate_conditions(conditions)
    except rule_logic.RuleError as exc:
        raise FlagError(exc.errors) from exc


@transaction.atomic
def create_segment(
    tenant: Tenant, *, key: str, name: str, conditions: dict, description: str = ""
) -> Segment:
    _validate_segment(conditions)
    segment = Segment(
        tenant=tenant, key=key, name=name or key, description=description, conditions=conditions
    )
    try:
        segment.full_clean(validate_unique=False, validate_constraints=False)
    except Exception as exc:
        raise FlagError(getattr(exc, "message_dict", {"key": [str(exc)]})) from exc
    try:
        with transaction.atomic():
            segment.save(audit_action="segment.created")
    except IntegrityError as exc:
        raise FlagError({"key": [f"A segment {key!r} already exists."]}) from exc
    _touch(Environment.objects.for_tenant(tenant).values_list("pk", flat=True))
    return segment


@transaction.atomic
def update_segment(
    segment: Segment,
    *,
    changes: dict[str, Any],
    expected_version: int | None,
    if_match: str | None = None,
) -> Segment:
    locked = Segment.objects.select_for_update().get(pk=segment.pk)
    check_preconditions(locked, if_match, expected_version)
    unknown = set(changes) - {"name", "description", "conditions"}
    if unknown:
        raise FlagError({name: ["Not editable."] for name in sorted(unknown)})
    if "conditions" in changes:
        _validate_segment(changes["conditions"])
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.version += 1
    locked.save(audit_action="segment.updated")
    _touch(Environment.objects.for_tenant(locked.tenant_id).values_list("pk", flat=True))
    return locked


def segment_users(segment: Segment) -> list[str]:
    """`flag@environment` of every state whose rules refer to the segment."""
    users = []
    states = FlagState.objects.for_tenant(segment.tenant_id).select_related("flag", "environment")
    for state in states:
        if _mentions_segment(state.rules, segment.key):
            users.append(f"{state.flag.key}@{state.environment.key}")
    return users


def _mentions_segment(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        if node.get("segment") == key or node.get("$ref") == rule_logic.segment_evaluator_name(key):
            return True
        return any(_mentions_segment(value, key) for value in node.values())
    if isinstance(node, list):
        return any(_mentions_segment(value, key) for value in node)
    return False


@transaction.atomic
def delete_segment(segment: Segment) -> None:
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    users = segment_users(segment)
    if users:
        raise InUse(f"Segment {segment.key!r} is used by {', '.join(users)}.")
    tenant_id = segment.tenant_id
    segment.delete(audit_action="segment.deleted")
    _touch(Environment.objects.for_tenant(tenant_id).values_list("pk", flat=True))


@transaction.atomic
def create_environment_key(
    environment: Environment, *, name: str, created_by=None
) -> tuple[EnvironmentKey, str]:
    """A key for OFREP and flagd sync; the plaintext is returned once and never stored."""
    prefix, secret, plaintext = generate_token_secret(runtime.KEY_PREFIX)
    key = EnvironmentKey(
        tenant_id=environment.tenant_id,
        environment=environment,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        created_by=created_by,
    )
    key.save(audit_action="flag_environment_key.created")
    _touch([environment.pk])
    return key, plaintext


@transaction.atomic
def revoke_environment_key(key: EnvironmentKey) -> EnvironmentKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(audit_action="flag_environment_key.revoked")
        _touch([key.environment_id])
    return key
