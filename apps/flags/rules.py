"""Targeting rules and segment conditions: validation and compilation to flagd JsonLogic.

The admin and the API edit a small structured form; flagd's JsonLogic is what gets evaluated and
exported, so the portal, a flagd daemon and any flagd in-process provider agree.

Conditions: `{"all"|"any"|"none": [condition, …]}` (nestable), `{"segment": "<key>"}`, a leaf
`{"attribute": "market", "op": "in", "value": ["SA", "AE"]}`, or `{"jsonlogic": …}`: flagd
JsonLogic kept as written (what an imported flagd file used beyond the structured operators).
Rules (ordered, first match wins):
`{"name"?, "segment"?, "conditions"?, "variant" | "split": [{"variant", "weight"}]}`. Splits are
percentages that sum to 100 and bucket with flagd's `fractional` (murmur3 of flag key and
targeting key), so a user's bucket is the same everywhere and a growing percentage only adds users.

Every comparison on a missing attribute is false (as in LaunchDarkly and Unleash): JsonLogic
coerces a missing value to 0 or "null", which would make `age < 18` true for a context without an
age, so comparisons carry a type guard. Equality is strict (`===`). The encodings were checked
against flagd-core value by value (tests/flags/test_rules.py).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import semver

MAX_DEPTH = 5
MAX_CONDITIONS = 200
MAX_LIST = 1000
MAX_REGEX = 256
MAX_RAW_BYTES = 10_000
SEGMENT_EVALUATOR_PREFIX = "segment_"
ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)

STRING_OPS = {"starts_with", "ends_with"}
NUMBER_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
SEMVER_OPS = {
    "semver_eq": "=",
    "semver_neq": "!=",
    "semver_lt": "<",
    "semver_lte": "<=",
    "semver_gt": ">",
    "semver_gte": ">=",
}
DATE_OPS = ("before", "after")
OPERATORS = [
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "regex",
    *NUMBER_OPS,
    *SEMVER_OPS,
    *DATE_OPS,
    "is_set",
    "not_set",
]
GROUPS = ("all", "any", "none")


class RuleError(ValueError):
    """422: names the field (`rules[2].split`, `conditions.all[0].value`) and the problem."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {v[0]}" for k, v in errors.items()))
        self.errors = errors


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}
        self.count = 0

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise RuleError(self.errors)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and value is not None


def _check_leaf(node: dict, path: str, errors: _Errors) -> None:
    attribute, op, value = node.get("attribute"), node.get("op"), node.get("value")
    if not isinstance(attribute, str) or not attribute.strip():
        errors.add(f"{path}.attribute", "Name the context attribute, e.g. 'market'.")
    if op not in OPERATORS:
        errors.add(f"{path}.op", f"Unknown operator {op!r}; use one of {', '.join(OPERATORS)}.")
        return
    if op in ("is_set", "not_set"):
        return
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or not all(_is_scalar(v) for v in value):
            errors.add(f"{path}.value", f"'{op}' needs a non-empty list of strings or numbers.")
        elif len(value) > MAX_LIST:
            errors.add(f"{path}.value", f"At most {MAX_LIST} values.")
        return
    if op in NUMBER_OPS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.add(f"{path}.value", f"'{op}' compares numbers; give a number.")
        return
    if op in SEMVER_OPS:
        try:
            semver.Version.parse(_padded_version(value))
        except (TypeError, ValueError):
            errors.add(f"{path}.value", f"{value!r} is not a semantic version such as 1.4.0.")
        return
    if op in DATE_OPS:
        if not isinstance(value, str) or not ISO_DATE.match(value) or not _real_date(value):
            errors.add(
                f"{path}.value",
                "Give an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T09:00Z.",
            )
        return
    if op == "regex":
        if not isinstance(value, str) or not value:
            errors.add(f"{path}.value", "Give a regular expression.")
        elif len(value) > MAX_REGEX:
            errors.add(f"{path}.value", f"At most {MAX_REGEX} characters.")
        else:
            try:
                re.compile(value)
            except re.error as exc:
                errors.add(f"{path}.value", f"The regular expression does not compile: {exc}.")
        return
    if not _is_scalar(value) or (op in STRING_OPS | {"contains"} and not isinstance(value, str)):
        kind = "a string" if op in STRING_OPS | {"contains"} else "a string, number or boolean"
        errors.add(f"{path}.value", f"'{op}' needs {kind}.")


def _real_date(value: str) -> bool:
    """A calendar date before 9999-12-31 (`after` a date compiles to the next day)."""
    try:
        return date.fromisoformat(value[:10]) < date.max
    except ValueError:
        return False


def _padded_version(value: Any) -> str:
    version = str(value)
    if version[:1] in ("v", "V"):
        version = version[1:]
    numeric = version.split("-")[0].split("+")[0]
    dots = numeric.count(".")
    if dots < 2:
        version = numeric + ".0" * (2 - dots) + version[len(numeric) :]
    return version


def _check_conditions(
    node: Any, path: str, errors: _Errors, segments: set[str] | None, depth: int = 0
) -> None:
    errors.count += 1
    if errors.count > MAX_CONDITIONS:
        if errors.count == MAX_CONDITIONS + 1:
            errors.add(path, f"At most {MAX_CONDITIONS} conditions.")
        return
    if not isinstance(node, dict):
        errors.add(path, "A condition is an object.")
        return
    groups = [g for g in GROUPS if g in node]
    if groups:
        if len(groups) > 1 or len(node) > 1:
            errors.add(path, "A group has exactly one of 'all', 'any' or 'none'.")
            return
        if depth >= MAX_DEPTH:
            errors.add(path, f"Groups nest at most {MAX_DEPTH} deep.")
            return
        children = node[groups[0]]
        if not isinstance(children, list) or not children:
            errors.add(f"{path}.{groups[0]}", "A group holds a non-empty list of conditions.")
            return
        for index, child in enumerate(children):
            _check_conditions(child, f"{path}.{groups[0]}[{index}]", errors, segments, depth + 1)
        return
    if "jsonlogic" in node:
        _check_raw(node, path, errors, segments)
        return
    if "segment" in node:
        if segments is None:
            errors.add(f"{path}.segment", "Segments cannot refer to other segments.")
        elif not isinstance(node["segment"], str) or node["segment"] not in segments:
            errors.add(f"{path}.segment", f"No segment {node['segment']!r} in this tenant.")
        return
    _check_leaf(node, path, errors)


def _raw_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            return [node["$ref"]]
        return [ref for value in node.values() for ref in _raw_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _raw_refs(value)]
    return []


def _without_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return True if set(node) == {"$ref"} else {k: _without_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_refs(v) for v in node]
    return node


def _check_raw(node: dict, path: str, errors: _Errors, segments: set[str] | None) -> None:
    """A flagd JsonLogic condition kept as written (imported files): it must compile."""
    from apps.flags.evaluation import FlagdParseError, compile_logic

    if len(node) > 1:
        errors.add(path, "A 'jsonlogic' condition has no other keys.")
        return
    logic = node["jsonlogic"]
    if len(json.dumps(logic)) > MAX_RAW_BYTES:
        errors.add(f"{path}.jsonlogic", f"At most {MAX_RAW_BYTES} bytes of JsonLogic.")
        return
    for ref in _raw_refs(logic):
        key = ref.removeprefix(SEGMENT_EVALUATOR_PREFIX)
        if segments is None or not ref.startswith(SEGMENT_EVALUATOR_PREFIX) or key not in segments:
            errors.add(f"{path}.jsonlogic", f"$ref {ref!r} names no segment of this tenant.")
            return
    try:
        compile_logic(_without_refs(logic))
    except FlagdParseError as exc:
        errors.add(f"{path}.jsonlogic", f"flagd cannot evaluate this: {exc}")


def validate_conditions(conditions: Any, *, field: str = "conditions") -> None:
    """A segment's conditions (segments do not nest other segments)."""
    errors = _Errors()
    _check_conditions(conditions, field, errors, segments=None)
    errors.raise_if_any()


def _check_split(split: Any, path: str, variants: dict, errors: _Errors) -> None:
    if not isinstance(split, list) or not split:
        errors.add(path, "A split is a non-empty list of {variant, weight}.")
        return
    total = 0
    for index, part in enumerate(split):
        if not isinstance(part, dict):
            errors.add(f"{path}[{index}]", "Each part is {variant, weight}.")
            continue
        weight = part.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            errors.add(f"{path}[{index}].weight", "A whole percentage from 0 to 100.")
        else:
            total += weight
        if not isinstance(part.get("variant"), str) or part["variant"] not in variants:
            errors.add(f"{path}[{index}].variant", f"No variant {part.get('variant')!r}.")
    if total != 100 and path not in errors.errors:
        errors.add(path, f"Weights add up to {total}, not 100.")


def _check_outcome(node: dict, path: str, variants: dict, errors: _Errors) -> None:
    has_variant, has_split = "variant" in node, "split" in node
    if has_variant == has_split:
        errors.add(path, "Give either a variant or a split.")
    elif has_variant and (not isinstance(node["variant"], str) or node["variant"] not in variants):
        errors.add(f"{path}.variant", f"No variant {node['variant']!r} in this flag.")
    elif has_split:
        _check_split(node["split"], f"{path}.split", variants, errors)


def validate_state(
    *, variants: dict, default_variant: str, rules: Any, fallthrough: Any, segments: set[str]
) -> None:
    errors = _Errors()
    if not isinstance(default_variant, str) or default_variant not in variants:
        errors.add("default_variant", f"No variant {default_variant!r} in this flag.")
    if not isinstance(rules, list):
        errors.add("rules", "Rules are a list.")
        rules = []
    for index, rule in enumerate(rules):
        path = f"rules[{index}]"
        if not isinstance(rule, dict):
            errors.add(path, "A rule is an object.")
            continue
        if "segment" not in rule and "conditions" not in rule:
            errors.add(path, "A rule needs a segment, conditions, or both.")
        if "segment" in rule and (
            not isinstance(rule["segment"], str) or rule["segment"] not in segments
        ):
            errors.add(f"{path}.segment", f"No segment {rule['segment']!r} in this tenant.")
        if "conditions" in rule:
            _check_conditions(rule["conditions"], f"{path}.conditions", errors, segments)
        _check_outcome(rule, path, variants, errors)
    if fallthrough:
        if not isinstance(fallthrough, dict):
            errors.add("fallthrough", 'Give {"variant": …} or {"split": […]}.')
        else:
            _check_outcome(fallthrough, "fallthrough", variants, errors)
    errors.raise_if_any()


def validate_variants(value_type: str, variants: Any) -> None:
    errors = _Errors()
    expected = {
        "boolean": (bool,),
        "string": (str,),
        "integer": (int,),
        "float": (int, float),
        "object": (dict, list),
    }[value_type]
    if not isinstance(variants, dict) or not variants:
        errors.add("variants", "Give at least one variant: name → value.")
    else:
        for name, value in variants.items():
            if not re.match(r"^[A-Za-z0-9_.-]{1,100}$", name):
                errors.add(f"variants.{name}", "Variant names use letters, digits, '_', '.', '-'.")
            bad_bool = value_type in ("integer", "float") and isinstance(value, bool)
            if bad_bool or not isinstance(value, expected):
                errors.add(f"variants.{name}", f"A {value_type} value, not {value!r}.")
    errors.raise_if_any()


# --- compilation to JsonLogic ----------------------------------------------------------------


def _var(attribute: str) -> dict:
    return {"var": attribute}


def _is_set(attribute: str) -> dict:
    return {"!==": [_var(attribute), None]}


def _is_number(attribute: str) -> dict:
    """True for numbers only: `+x` is x itself for a number, NaN or another value otherwise."""
    return {"===": [_var(attribute), {"+": [_var(attribute)]}]}


def _is_iso_string(attribute: str) -> dict:
    x = _var(attribute)
    return {
        "and": [
            {"starts_with": [x, ""]},
            {"===": [{"substr": [x, 4, 1]}, "-"]},
            {"===": [{"substr": [x, 7, 1]}, "-"]},
        ]
    }


def _next_day(value: str) -> str:
    return (date.fromisoformat(value) + timedelta(days=1)).isoformat()


def _leaf_logic(node: dict) -> dict:
    """JsonLogic for one condition. Strict equality (`===`): JsonLogic's `==` would match
    `["pro"]` or `"17"` as well; every comparison on a missing attribute is false."""
    attribute, op, value = node["attribute"], node["op"], node.get("value")
    x = _var(attribute)
    if op == "equals":
        return {"===": [x, value]}
    if op == "not_equals":
        return {"and": [_is_set(attribute), {"!==": [x, value]}]}
    if op == "in":
        return {"in": [x, value]}
    if op == "not_in":
        return {"and": [_is_set(attribute), {"!": {"in": [x, value]}}]}
    if op == "contains":
        return {"in": [value, x]}
    if op in STRING_OPS:
        return {op: [x, value]}
    if op == "regex":
        return {"regex": [x, value]}
    if op in NUMBER_OPS:
        return {"and": [_is_number(attribute), {NUMBER_OPS[op]: [x, value]}]}
    if op in SEMVER_OPS:
        return {"and": [_is_set(attribute), {"sem_ver": [x, SEMVER_OPS[op], value]}]}
    if op == "before":
        return {"and": [_is_iso_string(attribute), {"<": [x, value]}]}
    if op == "after":
        if len(value) == 10:  # a date: any time on that day is not "after" it
            return {"and": [_is_iso_string(attribute), {">=": [x, _next_day(value)]}]}
        return {"and": [_is_iso_string(attribute), {">": [x, value]}]}
    if op == "is_set":
        return _is_set(attribute)
    return {"===": [x, None]}  # not_set


def conditions_logic(node: dict) -> dict:
    """JsonLogic for a validated condition tree; segments become flagd `$ref`s."""
    if "all" in node:
        return {"and": [conditions_logic(child) for child in node["all"]]}
    if "any" in node:
        return {"or": [conditions_logic(child) for child in node["any"]]}
    if "none" in node:
        return {"!": {"or": [conditions_logic(child) for child in node["none"]]}}
    if "segment" in node:
        return {"$ref": segment_evaluator_name(node["segment"])}
    if "jsonlogic" in node:
        return node["jsonlogic"]
    return _leaf_logic(node)


def segment_evaluator_name(key: str) -> str:
    return f"{SEGMENT_EVALUATOR_PREFIX}{key}"


def _outcome_logic(node: dict) -> str | dict:
    if "split" in node:
        return {"fractional": [[part["variant"], part["weight"]] for part in node["split"]]}
    return node["variant"]


def targeting_logic(rules: list[dict], fallthrough: dict, default_variant: str) -> dict | None:
    """The flagd `targeting` for a state, or None when it always serves the default (STATIC).

    A fallthrough that is the default variant compiles to no else-branch, so flagd reports
    DEFAULT for "no rule matched", as it does for its own flags.
    """
    branches: list[Any] = []
    for rule in rules:
        parts = []
        if rule.get("segment"):
            parts.append({"$ref": segment_evaluator_name(rule["segment"])})
        if rule.get("conditions"):
            parts.append(conditions_logic(rule["conditions"]))
        condition = parts[0] if len(parts) == 1 else {"and": parts}
        branches += [condition, _outcome_logic(rule)]
    fall = None
    if fallthrough and not ("variant" in fallthrough and fallthrough["variant"] == default_variant):
        fall = _outcome_logic(fallthrough)
    if not branches:
        return (
            {"fractional": fall["fractional"]}
            if isinstance(fall, dict)
            else (None if fall is None else {"if": [True, fall]})
        )
    if fall is not None:
        branches.append(fall)
    return {"if": branches}
