"""An environment as a flagd flag-definition document (https://flagd.dev/reference/flag-definitions/).

The same document is what the portal evaluates (compiled by apps/flags/evaluation) and what
`GET /api/v1/flags/flagd/{environment}.json` serves to flagd daemons, so both answer alike.
Segments become shared `$evaluators` referenced with `$ref`; archived flags are left out.
"""

from __future__ import annotations

from typing import Any

from apps.flags import rules as rule_logic
from apps.flags.models import Environment, Flag, FlagState, Segment

SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"


def _typed_variants(flag: Flag) -> dict[str, Any]:
    """JSON numbers lose their int/float distinction in storage; restore it from the type."""
    if flag.value_type == "float":
        return {name: float(value) for name, value in flag.variants.items()}
    return dict(flag.variants)


def flag_definition(state: FlagState, environment: Environment) -> dict[str, Any]:
    flag = state.flag
    definition: dict[str, Any] = {
        "state": "ENABLED" if state.enabled else "DISABLED",
        "variants": _typed_variants(flag),
        "defaultVariant": state.default_variant,
    }
    targeting = rule_logic.targeting_logic(state.rules, state.fallthrough, state.default_variant)
    if targeting is not None:
        definition["targeting"] = targeting
    definition["metadata"] = {
        "flagVersion": flag.version,
        "stateVersion": state.version,
        "environment": environment.key,
        "kind": flag.kind,
    }
    return definition


def environment_document(environment: Environment) -> dict[str, Any]:
    """The flagd document of one environment (the caller has entered the tenant's scope)."""
    states = (
        FlagState.objects.for_tenant(environment.tenant_id)
        .filter(environment=environment, flag__archived=False)
        .select_related("flag")
        .order_by("flag__key")
    )
    segments = Segment.objects.for_tenant(environment.tenant_id).order_by("key")
    document: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "metadata": {
            "flagSetId": f"{environment.tenant_id}/{environment.key}",
            "environment": environment.key,
            "configVersion": environment.config_version,
        },
        "flags": {state.flag.key: flag_definition(state, environment) for state in states},
    }
    evaluators = {
        rule_logic.segment_evaluator_name(segment.key): rule_logic.conditions_logic(
            segment.conditions
        )
        for segment in segments
    }
    if evaluators:
        document["$evaluators"] = evaluators
    return document
