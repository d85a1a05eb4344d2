"""Import a flagd flag-definition file into one environment, reporting what cannot be kept.

The inverse of apps/flags/flagd.py. Targeting of the form `{"if": [condition, outcome, …,
else]}` becomes ordered rules; outcomes are variants or `fractional` splits (weights scaled to
percentages when that is exact: flagd buckets by `hash * total >> 32`, so scaling every weight by
the same whole factor keeps every user in the same bucket). Conditions in the portal's own
encodings become structured conditions; any other JsonLogic the evaluator accepts is kept as a
`{"jsonlogic": …}` condition, so nothing is rewritten into something that means less. Shared
`$evaluators` become segments.

What does not fit (a targeting shape that is not a rule chain, weights that are not exactly a
percentage, variants of mixed types, unknown operators) is reported per flag and that flag is not
imported: nothing is dropped silently and nothing is half-imported. A file written by the
portal's export comes back identical (tests/flags/test_flagd_import.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import transaction

from apps.flags import rules as rule_logic
from apps.flags import services
from apps.flags.models import Environment, Flag, FlagState, Segment
from apps.tenancy.models import Tenant


class Unsupported(ValueError):
    pass


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    unsupported: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "segments": self.segments,
            "unsupported": self.unsupported,
        }


def _reason(exc: Exception) -> str:
    """Why a flag or evaluator does not fit, for the report (also for malformed values that
    raised deep inside: a list where a name belongs, a date that is not one)."""
    if isinstance(exc, (Unsupported, rule_logic.RuleError)):
        return str(exc)
    return f"malformed ({type(exc).__name__}: {exc})"


def _var(node: Any) -> str | None:
    if isinstance(node, dict) and set(node) == {"var"} and isinstance(node["var"], str):
        return node["var"]
    return None


def _pair(node: Any, op: str) -> tuple[str, Any] | None:
    """(attribute, constant) for `{op: [{"var": a}, constant]}`."""
    if not isinstance(node, dict) or set(node) != {op}:
        return None
    args = node[op]
    if not isinstance(args, list) or len(args) != 2 or _var(args[0]) is None:
        return None
    if isinstance(args[1], (dict, list)) and op != "in":
        return None
    return _var(args[0]), args[1]


def _guarded(node: Any) -> tuple[dict, dict] | None:
    if isinstance(node, dict) and set(node) == {"and"} and isinstance(node["and"], list):
        parts = node["and"]
        if len(parts) == 2:
            return parts[0], parts[1]
    return None


def _leaf(node: Any) -> dict | None:
    """A structured condition when `node` is exactly one of the portal's encodings."""
    for op, name in (("===", "equals"), ("in", "in")):
        pair = _pair(node, op)
        if pair and (op != "in" or isinstance(pair[1], list)):
            attribute, value = pair
            if name == "equals" and value is None:
                return {"attribute": attribute, "op": "not_set"}
            return {"attribute": attribute, "op": name, "value": value}
    pair = _pair(node, "!==")
    if pair and pair[1] is None:
        return {"attribute": pair[0], "op": "is_set"}
    for op in ("starts_with", "ends_with", "regex"):
        pair = _pair(node, op)
        if pair and isinstance(pair[1], str):
            return {"attribute": pair[0], "op": op, "value": pair[1]}
    if isinstance(node, dict) and set(node) == {"in"}:
        args = node["in"]
        if isinstance(args, list) and len(args) == 2 and isinstance(args[0], str) and _var(args[1]):
            return {"attribute": _var(args[1]), "op": "contains", "value": args[0]}
    return _guarded_leaf(node)


def _guarded_leaf(node: Any) -> dict | None:
    """The encodings that carry a type guard (see rules._leaf_logic): rebuild and compare."""
    guarded = _guarded(node)
    if guarded is None:
        return None
    _guard, test = guarded
    candidates: list[dict] = []
    for op, symbol in rule_logic.NUMBER_OPS.items():
        pair = _pair(test, symbol)
        if pair:
            candidates.append({"attribute": pair[0], "op": op, "value": pair[1]})
    pair = _pair(test, "!==")
    if pair:
        candidates.append({"attribute": pair[0], "op": "not_equals", "value": pair[1]})
    if isinstance(test, dict) and set(test) == {"!"}:
        inner = _pair(test["!"], "in")
        if inner:
            candidates.append({"attribute": inner[0], "op": "not_in", "value": inner[1]})
    if isinstance(test, dict) and set(test) == {"sem_ver"} and isinstance(test["sem_ver"], list):
        args = test["sem_ver"]
        if len(args) == 3 and _var(args[0]) is not None:
            for op, symbol in rule_logic.SEMVER_OPS.items():
                if args[1] == symbol:
                    candidates.append({"attribute": _var(args[0]), "op": op, "value": args[2]})
    for symbol, op in (("<", "before"), (">", "after"), (">=", "after")):
        pair = _pair(test, symbol)
        if pair and isinstance(pair[1], str):
            value = pair[1]
            if symbol == ">=" and len(value) == 10:
                value = (date.fromisoformat(value) - timedelta(days=1)).isoformat()
            candidates.append({"attribute": pair[0], "op": op, "value": value})
    for candidate in candidates:
        try:
            rule_logic.validate_conditions(candidate)
        except (rule_logic.RuleError, ValueError):
            continue
        if rule_logic.conditions_logic(candidate) == node:
            return candidate
    return None


def condition_from_logic(node: Any, segment_names: dict[str, str]) -> dict:
    """A condition tree for JsonLogic `node`; raises Unsupported if the evaluator refuses it."""
    if isinstance(node, dict) and set(node) == {"$ref"}:
        name = node["$ref"]
        if name not in segment_names:
            raise Unsupported(f"unknown $ref {name!r}")
        return {"segment": segment_names[name]}
    if isinstance(node, dict) and len(node) == 1:
        ((op, args),) = node.items()
        if op in ("and", "or") and isinstance(args, list) and len(args) >= 1:
            leaf = _leaf(node)
            if leaf is not None:
                return leaf
            group = "all" if op == "and" else "any"
            return {group: [condition_from_logic(arg, segment_names) for arg in args]}
        if op == "!" and isinstance(args, dict) and set(args) == {"or"}:
            return {"none": [condition_from_logic(arg, segment_names) for arg in args["or"]]}
    leaf = _leaf(node)
    if leaf is not None:
        return leaf
    renamed = _rename_refs(node, segment_names)
    errors = rule_logic._Errors()
    rule_logic._check_raw({"jsonlogic": renamed}, "jsonlogic", errors, set(segment_names.values()))
    if errors.errors:
        raise Unsupported(next(iter(errors.errors.values()))[0])
    return {"jsonlogic": renamed}


def _rename_refs(node: Any, segment_names: dict[str, str]) -> Any:
    """`$ref`s to the file's evaluators, renamed to the segments they become."""
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            if node["$ref"] not in segment_names:
                raise Unsupported(f"unknown $ref {node['$ref']!r}")
            return {"$ref": rule_logic.segment_evaluator_name(segment_names[node["$ref"]])}
        return {k: _rename_refs(v, segment_names) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_refs(v, segment_names) for v in node]
    return node


def _outcome(node: Any, variants: dict) -> dict:
    if isinstance(node, bool):
        node = str(node).lower()
    if isinstance(node, str):
        if node not in variants:
            raise Unsupported(f"variant {node!r} is not defined")
        return {"variant": node}
    if isinstance(node, dict) and set(node) == {"fractional"}:
        parts = node["fractional"]
        if not isinstance(parts, list) or not parts:
            raise Unsupported("fractional without variants")
        if not isinstance(parts[0], list):
            raise Unsupported("fractional bucketing by a custom expression")
        weights = []
        for part in parts:
            if not isinstance(part, list) or not 1 <= len(part) <= 2:
                raise Unsupported("fractional entries are [variant, weight]")
            weight = part[1] if len(part) == 2 else 1
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise Unsupported("fractional weights are whole numbers")
            weights.append((str(part[0]).lower() if isinstance(part[0], bool) else part[0], weight))
        total = sum(w for _, w in weights)
        if total <= 0 or 100 % total:
            raise Unsupported(
                f"fractional weights total {total}: not exactly a percentage split "
                "(the total must divide 100 to keep every user's bucket)"
            )
        factor = 100 // total
        split = []
        for variant, weight in weights:
            if variant not in variants:
                raise Unsupported(f"variant {variant!r} is not defined")
            split.append({"variant": variant, "weight": weight * factor})
        return {"split": split}
    raise Unsupported("an outcome that is neither a variant nor a fractional split")


def rules_from_targeting(
    targeting: Any, variants: dict, default_variant: str, segment_names: dict[str, str]
) -> tuple[list[dict], dict]:
    if targeting in (None, {}):
        return [], {}
    if isinstance(targeting, dict) and set(targeting) == {"fractional"}:
        return [], _outcome(targeting, variants)
    if not isinstance(targeting, dict) or set(targeting) != {"if"}:
        raise Unsupported("targeting that is not an `if` chain of rules")
    branches = targeting["if"]
    if not isinstance(branches, list) or len(branches) < 2:
        raise Unsupported("an `if` without a condition and an outcome")
    if branches[0] is True and len(branches) == 2:
        return [], _outcome(branches[1], variants)
    rules = []
    for index in range(0, len(branches) - 1, 2):
        condition = condition_from_logic(branches[index], segment_names)
        rule: dict[str, Any] = {}
        if set(condition) == {"segment"}:
            rule["segment"] = condition["segment"]
        elif "all" in condition and condition["all"] and "segment" in condition["all"][0]:
            rule["segment"] = condition["all"][0]["segment"]
            rest = condition["all"][1:]
            rule["conditions"] = rest[0] if len(rest) == 1 else {"all": rest}
        else:
            rule["conditions"] = condition
        rule.update(_outcome(branches[index + 1], variants))
        rules.append(rule)
    fallthrough: dict = {}
    if len(branches) % 2:
        fallthrough = _outcome(branches[-1], variants)
    return rules, fallthrough


def _value_type(variants: dict) -> str:
    values = list(variants.values())
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    if all(isinstance(v, (dict, list)) for v in values):
        return "object"
    raise Unsupported("variants of mixed types")


_KNOWN_KEYS = {"state", "variants", "defaultVariant", "targeting", "metadata"}
_EXPORTED_METADATA = {"flagVersion", "stateVersion", "environment", "kind"}


def _plan_flag(key: str, definition: Any, segment_names: dict[str, str]) -> dict:
    if not isinstance(definition, dict):
        raise Unsupported("the definition is not an object")
    unknown = set(definition) - _KNOWN_KEYS
    if unknown:
        raise Unsupported(f"keys the portal does not keep: {', '.join(sorted(unknown))}")
    metadata = definition.get("metadata") or {}
    extra_metadata = set(metadata) - _EXPORTED_METADATA
    if extra_metadata:
        raise Unsupported(f"metadata the portal does not keep: {', '.join(sorted(extra_metadata))}")
    variants = definition.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise Unsupported("no variants")
    value_type = _value_type(variants)
    default_variant = definition.get("defaultVariant")
    if isinstance(default_variant, bool):
        default_variant = str(default_variant).lower()
    if default_variant not in variants:
        raise Unsupported("no defaultVariant among the variants")
    if definition.get("state") not in ("ENABLED", "DISABLED"):
        raise Unsupported("state is neither ENABLED nor DISABLED")
    rules, fallthrough = rules_from_targeting(
        definition.get("targeting"), variants, default_variant, segment_names
    )
    kind = metadata.get("kind", "release")
    return {
        "value_type": value_type,
        "variants": variants,
        "kind": kind,
        "state": {
            "enabled": definition["state"] == "ENABLED",
            "default_variant": default_variant,
            "rules": rules,
            "fallthrough": fallthrough,
        },
    }


@transaction.atomic
def import_document(
    tenant: Tenant, environment: Environment, document: dict | str, *, dry_run: bool = False
) -> ImportReport:
    """Create or update flags and segments from a flagd document; unsupported flags are
    reported and left alone. With `dry_run`, only the report."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise services.FlagError({"document": [f"Not JSON: {exc}."]}) from exc
    if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
        raise services.FlagError({"document": ["A flagd document has a 'flags' object."]})
    if environment.requires_approval and not dry_run:
        raise services.FlagError(
            {
                "environment": [
                    f"Changes to {environment.key} need a second operator's approval, which an "
                    "import would bypass: import into another environment, or use a dry run."
                ]
            }
        )
    report = ImportReport()
    evaluators = document.get("$evaluators") or {}
    segment_names = {
        name: name.removeprefix(rule_logic.SEGMENT_EVALUATOR_PREFIX)
        for name in evaluators
        if isinstance(name, str)
    }
    segment_conditions = {}
    for name, logic in evaluators.items():
        try:
            conditions = condition_from_logic(logic, {})
            rule_logic.validate_conditions(conditions)
            segment_conditions[segment_names[name]] = conditions
        except (Unsupported, rule_logic.RuleError, ValueError, TypeError, OverflowError) as exc:
            report.unsupported[f"$evaluators.{name}"] = [_reason(exc)]
    planned = {}
    for key, definition in document["flags"].items():
        try:
            planned[key] = _plan_flag(key, definition, segment_names)
            rule_logic.validate_variants(planned[key]["value_type"], planned[key]["variants"])
        except (Unsupported, rule_logic.RuleError, ValueError, TypeError, OverflowError) as exc:
            report.unsupported[key] = [_reason(exc)]
    if dry_run:
        report.segments = sorted(segment_conditions)
        report.imported = sorted(planned)
        return report
    for key, conditions in segment_conditions.items():
        segment = Segment.objects.for_tenant(tenant).filter(key=key).first()
        if segment is None:
            services.create_segment(tenant, key=key, name=key, conditions=conditions)
        elif segment.conditions != conditions:
            services.update_segment(
                segment, changes={"conditions": conditions}, expected_version=segment.version
            )
        report.segments.append(key)
    for key, plan in planned.items():
        try:
            with transaction.atomic():
                _apply_plan(tenant, environment, key, plan)
            report.imported.append(key)
        except services.FlagError as exc:
            report.unsupported[key] = [str(exc)]
    return report


def _apply_plan(tenant: Tenant, environment: Environment, key: str, plan: dict) -> None:
    flag = Flag.objects.for_tenant(tenant).filter(key=key).first()
    if flag is None:
        flag = services.create_flag(
            tenant,
            key=key,
            name=key,
            value_type=plan["value_type"],
            variants=plan["variants"],
            default_variant=plan["state"]["default_variant"],
            kind=plan["kind"],
        )
    elif flag.value_type != plan["value_type"]:
        raise services.FlagError(
            {"value_type": [f"{key} is a {flag.value_type} flag here, {plan['value_type']} there."]}
        )
    elif flag.variants != plan["variants"]:
        flag = services.update_flag(
            flag,
            changes={"variants": {**flag.variants, **plan["variants"]}},
            expected_version=flag.version,
        )
    state = FlagState.objects.get(flag=flag, environment=environment)
    services.update_state(
        state,
        changes=plan["state"],
        expected_version=state.version,
        audit_action="flag_state.imported",
    )
