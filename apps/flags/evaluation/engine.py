"""Evaluate flagd flag definitions the way flagd's reference evaluator does, compiled once.

``evaluate`` returns what ``FlagdCore._resolve`` (openfeature-flagd-core 2.0.0) returns for the
same flag and context, with these deliberate differences:

- DISABLED: flagd-core returns the caller's default value and no variant. OFREP clients need a
  variant, so we return the defaultVariant's name and value (both None when the flag has no
  usable defaultVariant), reason "DISABLED".
- SPLIT: when the variant came out of a ``fractional`` operator (possibly through ``if``,
  ``?:``, ``and`` or ``or``, unchanged) the reason is "SPLIT" instead of "TARGETING_MATCH".
- No caller default: where flagd-core answers with the caller's default value (no
  defaultVariant), the value is None and the variant None; the reason is flagd-core's ("DEFAULT").
- Errors are results, never exceptions: a resolved variant that is not in ``variants`` (or
  whose value is null) and any exception raised while the targeting runs become
  ``Resolution(reason="ERROR", error_code="GENERAL")``, as flagd-core's GeneralError and raw
  exceptions do. flagd-core's ParseError cases (unknown operators, targeting that is not an
  object) are refused by ``compile_flag`` instead, so evaluate never returns "PARSE_ERROR".
- No type check: flagd-core's ``resolve_<type>_value`` raises TypeMismatchError when a variant's
  value is not of the requested type; evaluate is untyped (OFREP returns the value as is).
- Stricter compilation (FlagdParseError up front instead of an error or null at every
  evaluation): see jsonlogic.py; in addition a non-empty ``targeting`` object must be a single
  operation and flag definitions may only carry flagd's keys (state, variants, defaultVariant,
  targeting, metadata, source, selector). flagd-core also accepts a snake_case
  ``default_variant`` key; we do not.

``$flagd.timestamp`` is ``int(time.time())`` unless ``now`` is given. Resolution values are
shared with the compiled flag (as flagd-core shares them with its store): do not mutate them.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .jsonlogic import FlagdParseError, compile_targeting

__all__ = [
    "CompiledFlag",
    "FlagdParseError",
    "Resolution",
    "compile_flag",
    "compile_flag_set",
    "evaluate",
]

FLAG_KEYS = frozenset(
    {"state", "variants", "defaultVariant", "targeting", "metadata", "source", "selector"}
)
STATES = frozenset({"ENABLED", "DISABLED"})


@dataclass(frozen=True, slots=True)
class Resolution:
    value: Any
    variant: str | None
    reason: str  # "STATIC" | "TARGETING_MATCH" | "SPLIT" | "DISABLED" | "DEFAULT" | "ERROR"
    error_code: str | None = None  # "PARSE_ERROR" | "GENERAL"
    error_details: str | None = None


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    key: str
    state: str
    variants: Mapping[str, Any]
    default_variant: str | None
    targeting: dict[str, Any] | None
    metadata: Mapping[str, float | int | str | bool]
    rule: Callable[[dict[str, Any]], tuple[Any, bool]] | None = field(repr=False, compare=False)
    # Precomputed answers: no allocation on the hot path.
    static: Resolution = field(repr=False, compare=False)
    default: Resolution = field(repr=False, compare=False)
    disabled: Resolution = field(repr=False, compare=False)
    matches: Mapping[str, tuple[Resolution, Resolution]] = field(repr=False, compare=False)


def _validate_metadata(where: str, metadata: Any) -> dict[str, float | int | str | bool]:
    if not metadata:
        return {}
    if not isinstance(metadata, dict):
        raise FlagdParseError(f"{where}: metadata must be an object")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise FlagdParseError(f"{where}: metadata keys must be non-empty strings, got {key!r}")
        if value is None or not isinstance(value, (float, int, str, bool)):
            raise FlagdParseError(
                f"{where}: metadata {key!r} must be a string, number or boolean, got {value!r}"
            )
    return dict(metadata)


def _variant_name(default_variant: Any, key: str) -> str | None:
    """flagd-core's Flag.default_variant handling: "" and other falsy values mean none."""
    if isinstance(default_variant, bool):
        return str(default_variant).lower()
    if not default_variant:
        return None
    if not isinstance(default_variant, str):
        raise FlagdParseError(
            f"flag {key!r}: defaultVariant must be a string, got {default_variant!r}"
        )
    return default_variant


def _default_resolution(
    key: str, variants: Mapping[str, Any], default_variant: str | None, reason: str
) -> Resolution:
    if default_variant is None:
        return Resolution(None, None, "DEFAULT")
    if default_variant not in variants:
        return _error(f"flag {key!r}: Resolved variant {default_variant} not in variants config.")
    return Resolution(variants[default_variant], default_variant, reason)


def _error(details: str) -> Resolution:
    return Resolution(None, None, "ERROR", "GENERAL", details)


def compile_flag(
    key: str, definition: dict[str, Any], flag_set_metadata: Mapping[str, Any] | None = None
) -> CompiledFlag:
    """Validate one flag definition as flagd-core's Flag model does and compile its targeting."""
    if not isinstance(definition, dict):
        raise FlagdParseError(f"flag {key!r}: the definition must be an object")
    unknown = sorted(str(k) for k in definition if k not in FLAG_KEYS)
    if unknown:
        raise FlagdParseError(f"flag {key!r}: unknown keys {', '.join(unknown)}")
    definition = copy.deepcopy(definition)
    state = definition.get("state")
    if state not in STATES:
        raise FlagdParseError(
            f"flag {key!r}: Incorrect 'state' value {state!r} (ENABLED or DISABLED)"
        )
    variants = definition.get("variants")
    if not variants or not isinstance(variants, dict):
        raise FlagdParseError(f"flag {key!r}: 'variants' must be a non-empty object")
    default_variant = _variant_name(definition.get("defaultVariant"), key)
    metadata = _validate_metadata(f"flag {key!r}", dict(flag_set_metadata or {}))
    metadata.update(_validate_metadata(f"flag {key!r}", definition.get("metadata")))

    targeting = definition.get("targeting")
    rule = None
    if targeting:
        if not isinstance(targeting, dict):
            raise FlagdParseError(f"flag {key!r}: 'targeting' must be an object")
        if len(targeting) != 1:
            raise FlagdParseError(
                f"flag {key!r}: 'targeting' must be a single operation, got keys "
                f"{', '.join(map(str, targeting))}"
            )
        try:
            rule = compile_targeting(targeting)
        except FlagdParseError as exc:
            raise FlagdParseError(f"flag {key!r}: targeting: {exc}") from None
    else:
        targeting = None

    matches = {
        name: (Resolution(value, name, "TARGETING_MATCH"), Resolution(value, name, "SPLIT"))
        for name, value in variants.items()
        if name and value is not None  # flagd-core: GeneralError for "" and null values
    }
    default = _default_resolution(key, variants, default_variant, "DEFAULT")
    static = _default_resolution(key, variants, default_variant, "STATIC")
    if default_variant is not None and default_variant in variants:
        disabled = Resolution(variants[default_variant], default_variant, "DISABLED")
    else:
        disabled = Resolution(None, None, "DISABLED")
    return CompiledFlag(
        key=key,
        state=state,
        variants=variants,
        default_variant=default_variant,
        targeting=targeting,
        metadata=metadata,
        rule=rule,
        static=static,
        default=default,
        disabled=disabled,
        matches=matches,
    )


def _substitute_evaluators(flags: Any, evaluators: Any) -> Any:
    """$evaluators/$ref exactly as flagd-core's FlagStore.update does it (on the JSON text)."""
    if not isinstance(evaluators, dict):
        raise FlagdParseError("'$evaluators' must be an object")
    try:
        transposed = json.dumps(flags)
        for name, rule in evaluators.items():
            transposed = re.sub(
                rf"{{\s*\"\$ref\":\s*\"{re.escape(name)}\"\s*}}",
                json.dumps(rule),
                transposed,
            )
        return json.loads(transposed)
    except (TypeError, ValueError, re.error) as exc:
        raise FlagdParseError(f"'$evaluators' could not be substituted: {exc}") from None


def compile_flag_set(document: dict[str, Any] | str) -> dict[str, CompiledFlag]:
    """Compile a whole flagd flag file (flags, metadata, $evaluators)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise FlagdParseError(f"the flag set is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise FlagdParseError("the flag set must be a JSON object")
    flags = document.get("flags", {})
    evaluators = document.get("$evaluators")
    if evaluators:
        flags = _substitute_evaluators(flags, evaluators)
    if not isinstance(flags, dict):
        raise FlagdParseError("`flags` key of configuration must be a dictionary")
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict):
        raise FlagdParseError("`metadata` key of configuration must be a dictionary")
    set_metadata = _validate_metadata("flag set", metadata)
    return {key: compile_flag(key, definition, set_metadata) for key, definition in flags.items()}


def evaluate(flag: CompiledFlag, context: Mapping[str, Any], now: int | None = None) -> Resolution:
    """Resolve flag for an OFREP context (attributes plus an optional "targetingKey")."""
    if flag.state == "DISABLED":
        return flag.disabled
    rule = flag.rule
    if rule is None:
        return flag.static
    data = dict(context)
    data["$flagd"] = {"flagKey": flag.key, "timestamp": int(time.time()) if now is None else now}
    data["targetingKey"] = context.get("targetingKey")
    try:
        variant, split = rule(data)
        if variant is None:
            return flag.default
        if variant.__class__ is not str:
            variant = str(variant).lower() if isinstance(variant, bool) else str(variant)
    except Exception as exc:
        return _error(f"targeting failed: {type(exc).__name__}: {exc}")
    hit = flag.matches.get(variant)
    if hit is None:
        return _error(f"Resolved variant {variant} not in variants config.")
    return hit[1] if split else hit[0]
