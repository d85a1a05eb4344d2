"""The compiled flagd evaluator against flagd's reference evaluator (openfeature-flagd-core).

No database: everything here is pure Python.
"""

from __future__ import annotations

import copy
import importlib
import logging
import random
from types import SimpleNamespace
from typing import Any

import cbor2
import pytest
from json_logic import jsonLogic
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.contrib.tools.flagd.core.targeting.targeting import OPERATORS
from openfeature.evaluation_context import EvaluationContext

from apps.flags.evaluation import (
    PORTAL_ONLY_OPERATORS,
    FlagdParseError,
    compile_flag,
    compile_flag_set,
    compile_logic,
    evaluate,
    operators_used,
)
from apps.flags.evaluation.jsonlogic import _pair_key
from tests.flags.sample_flags import INTERNAL, RELEASE_RULES, RELEASE_SPLIT

# The module, not the function of the same name that its package re-exports.
reference_targeting = importlib.import_module(
    "openfeature.contrib.tools.flagd.core.targeting.targeting"
)

NOW = 1_750_000_000


def release_targeting() -> dict[str, Any]:
    args: list[Any] = []
    for condition, variant in RELEASE_RULES:
        args += [condition, variant]
    return {"if": [*args, RELEASE_SPLIT]}


FLAG_SET: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "metadata": {"team": "payments", "version": 3},
    "$evaluators": {
        "is_internal": {"ends_with": [{"var": "email"}, "@example.com"]},
        "is_eu": {"in": [{"var": "country"}, ["DE", "FR", "IT", "ES"]]},
        "is_beta": {
            "or": [{"==": [{"var": "beta"}, True]}, {"in": ["early-access", {"var": "tags"}]}]
        },
    },
    "flags": {
        "new-checkout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": release_targeting(),
            "metadata": {"owner": "checkout"},
        },
        "banner": {
            "state": "ENABLED",
            "variants": {"internal": "Hi team", "eu-beta": "Willkommen", "eu": "Hello EU"},
            "defaultVariant": "eu",
            "targeting": {
                "if": [
                    {"$ref": "is_internal"},
                    "internal",
                    {"and": [{"$ref": "is_eu"}, {"$ref": "is_beta"}]},
                    "eu-beta",
                    {"!": {"$ref": "is_eu"}},
                    None,
                    {"or": [{"var": "plan"}, "eu"]},
                ]
            },
        },
        "max-items": {
            "state": "ENABLED",
            "variants": {"small": 5, "medium": 20, "large": 100},
            "defaultVariant": "medium",
            "targeting": {
                "if": [
                    {"<": [0, {"var": "age"}, 18]},
                    "small",
                    {">=": [{"var": "age"}, 65]},
                    "medium",
                    {"in": [{"var": "plan"}, "enterprise business"]},
                    "large",
                ]
            },
        },
        "discount": {
            "state": "ENABLED",
            "variants": {"ten": 0.1, "twenty": 0.2, "full": 1.0, "five": 0.05, "none": 0},
            "defaultVariant": "none",
            "targeting": {
                "if": [
                    {"sem_ver": [{"var": "appVersion"}, "~", "2.1.0"]},
                    "ten",
                    {"sem_ver": [{"var": "appVersion"}, "^", "v3"]},
                    "twenty",
                    {"==": [{"var": "score"}, 1]},
                    "full",
                    {"!!": [{"var": "tags"}]},
                    "five",
                    "none",
                ]
            },
        },
        "theme": {
            "state": "ENABLED",
            "variants": {
                "gold": {"color": "gold", "density": 2},
                "admin": {"color": "red"},
                "light": {"color": "white"},
                "dark": {"color": "black"},
            },
            "defaultVariant": "light",
            "targeting": {
                "if": [
                    {
                        "and": [
                            {"!": {"var": "beta"}},
                            {
                                "or": [
                                    {"==": [{"var": "org.tier"}, "gold"]},
                                    {">": [{"var": "score"}, "0.5"]},
                                ]
                            },
                        ]
                    },
                    "gold",
                    {"==": [{"var": ["role", "guest"]}, "admin"]},
                    "admin",
                    {"==": [{"var": "$flagd.flagKey"}, "theme"]},
                    {
                        "fractional": [
                            {"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]},
                            ["light", 1],
                            ["dark", 1],
                        ]
                    },
                ]
            },
        },
        "sale": {
            "state": "ENABLED",
            "variants": {"true": True, "false": False},
            "defaultVariant": "false",
            "targeting": {
                "if": [
                    {
                        "and": [
                            {">=": [{"var": "$flagd.timestamp"}, NOW - 3600]},
                            {"<": [{"var": "$flagd.timestamp"}, NOW + 3600]},
                        ]
                    },
                    {"fractional": [[True, 50], [False, 50]]},
                    False,
                ]
            },
        },
        "plan-echo": {
            "state": "ENABLED",
            "variants": {"pro": "P", "free": "F", "true": "T", "5": "five", "nullish": None},
            "targeting": {"var": "plan"},
        },
        "ratio": {
            "state": "ENABLED",
            "variants": {"high": "H", "low": "L"},
            "defaultVariant": "low",
            "targeting": {"if": [{">": [{"/": [100, {"var": "age"}]}, 2]}, "high", "low"]},
        },
        "legacy": {
            "state": "DISABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
        },
        "static": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "b"},
        "no-default": {
            "state": "ENABLED",
            "variants": {"de": "Guten Tag"},
            "targeting": {"if": [{"==": [{"var": "country"}, "DE"]}, "de"]},
        },
    },
}
FLAG_KINDS = {
    "new-checkout": "boolean",
    "banner": "string",
    "max-items": "integer",
    "discount": "float",
    "theme": "object",
    "sale": "boolean",
    "plan-echo": "string",
    "ratio": "string",
    "legacy": "boolean",
    "static": "string",
    "no-default": "string",
}
CALLER_DEFAULTS: dict[str, Any] = {
    "boolean": False,
    "string": "caller-default",
    "integer": -1,
    "float": -1.0,
    "object": {"caller": "default"},
}


def random_context(rng: random.Random) -> dict[str, Any]:
    """An OFREP context: mostly plausible values, some of the wrong type, some missing."""
    n = rng.randrange(100_000)
    pools: dict[str, list[Any]] = {
        "email": [
            *INTERNAL,
            f"u{n}@example.com",
            f"qa+{n}@corp.io",
            f"user{n}@gmail.com",
            "",
            123,
            None,
            ["ana@corp.io"],
            True,
        ],
        "country": ["DE", "US", "FR", "IT", "ES", "GB", "de", 1, None, ["DE"]],
        "plan": ["enterprise", "business", "pro", "free", "trial", "Pro", 5, True, None],
        "appVersion": [
            "1.0.0",
            "1.4.9",
            "1.5.0",
            "2.0.0",
            "2.1.3",
            "3.0.0",
            "3.2.1-beta.1",
            "v3.1",
            "3",
            "4.0.0",
            "4.2",
            "banana",
            "",
            3,
            2.5,
            None,
        ],
        "age": [*range(0, 80, 7), 17.5, "17", "abc", "", None, True, [20]],
        "beta": [True, False, True, "true", 1, 0, None],
        "tags": [["early-access"], ["x", "early-access"], [], ["x"], "early-access", "", None],
        "company": ["acme", "globex", "initech", "umbrella", "", "acme,globex", 5, None],
        "score": [0.1, 0.5, 0.79, 0.8, 0.95, 1, 1.0, "0.9", "", None, [0.9]],
        "org": [
            {"tier": "gold", "seats": 150},
            {"tier": "gold", "seats": 50},
            {"tier": "gold", "seats": "150"},
            {"tier": "silver", "seats": 500},
            "gold",
            None,
            [],
        ],
        "role": ["admin", "user", "guest", "", None, 0],
    }
    context: dict[str, Any] = {}
    for name, pool in pools.items():
        if rng.random() < 0.85:
            context[name] = rng.choice(pool)
    roll = rng.random()
    if roll < 0.9:
        context["targetingKey"] = f"user-{n}"
    elif roll < 0.95:
        context["targetingKey"] = rng.choice(["", 42])
    return context


def reference_resolve(core: FlagdCore, key: str, context: dict[str, Any]) -> Any:
    kind = FLAG_KINDS[key]
    attributes = {k: v for k, v in context.items() if k != "targetingKey"}
    ec = EvaluationContext(targeting_key=context.get("targetingKey"), attributes=attributes)
    try:
        return getattr(core, f"resolve_{kind}_value")(key, CALLER_DEFAULTS[kind], ec)
    except Exception as exc:
        return exc


@pytest.fixture
def frozen_reference_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """flagd-core reads time.time() for $flagd.timestamp; pin it to NOW."""
    monkeypatch.setattr(reference_targeting, "time", SimpleNamespace(time=lambda: float(NOW)))


@pytest.fixture(autouse=True)
def quiet_reference_logger() -> Any:
    """flagd-core logs every null fractional/sem_ver; keep the output readable."""
    logger = logging.getLogger("openfeature.contrib")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(previous)


def assert_agrees(ours: Any, theirs: Any, key: str, context: dict[str, Any]) -> None:
    where = f"{key} {context!r}: ours {ours!r}, flagd-core {theirs!r}"
    if isinstance(theirs, Exception):
        assert ours.reason == "ERROR" and ours.error_code == "GENERAL", where
        return
    assert ours.reason != "ERROR", where
    reason = theirs.reason.value if hasattr(theirs.reason, "value") else str(theirs.reason)
    if reason == "DISABLED":
        assert ours.reason == "DISABLED", where
        return
    assert ("TARGETING_MATCH" if ours.reason == "SPLIT" else ours.reason) == reason, where
    assert ours.variant == theirs.variant, where
    if theirs.variant is None:
        assert ours.value is None, where
        return
    assert ours.value == theirs.value, where
    if FLAG_KINDS[key] != "float":
        assert type(ours.value) is type(theirs.value), where


def first_rule_hit(rules: list[Any], context: dict[str, Any]) -> int:
    data = dict(context)
    data["$flagd"] = {"flagKey": "new-checkout", "timestamp": NOW}
    data["targetingKey"] = context.get("targetingKey")
    for index, rule in enumerate(rules):
        if rule(data):
            return index
    return len(rules)


@pytest.mark.usefixtures("frozen_reference_clock")
def test_agrees_with_flagd_core_on_random_contexts() -> None:
    core = FlagdCore()
    core.set_flags(copy.deepcopy(FLAG_SET))
    flags = compile_flag_set(FLAG_SET)
    assert set(flags) == set(FLAG_KINDS)
    rules = [compile_logic(condition) for condition, _ in RELEASE_RULES]
    hits = [0] * (len(rules) + 1)
    reasons: dict[str, set[str]] = {key: set() for key in flags}
    rng = random.Random(20240611)
    for _ in range(10_000):
        context = random_context(rng)
        hits[first_rule_hit(rules, context)] += 1
        for key, flag in flags.items():
            ours = evaluate(flag, context, now=NOW)
            reasons[key].add(ours.reason)
            assert_agrees(ours, reference_resolve(core, key, context), key, context)
    assert all(hits), f"every rule of new-checkout must be the first match sometimes: {hits}"
    # DEFAULT: no usable targetingKey, so the fractional fallthrough is null.
    assert reasons["new-checkout"] == {"TARGETING_MATCH", "SPLIT", "DEFAULT"}
    assert "SPLIT" in reasons["theme"] and "SPLIT" in reasons["sale"]
    assert reasons["plan-echo"] >= {"TARGETING_MATCH", "DEFAULT", "ERROR"}
    assert reasons["ratio"] >= {"TARGETING_MATCH", "ERROR"}
    assert reasons["banner"] >= {"TARGETING_MATCH", "DEFAULT"}
    assert reasons["legacy"] == {"DISABLED"} and reasons["static"] == {"STATIC"}
    assert reasons["no-default"] == {"TARGETING_MATCH", "DEFAULT"}


# --- operator-level differential test against panzi-json-logic --------------------------------

FUZZ_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    1.5,
    0.0,
    18,
    1e21,
    "",
    "0",
    "1",
    "1.0",
    " 2 ",
    "abc",
    "a",
    "true",
    "null",
    "1e3",
    "inf",
    "infinity",
    "2024-01-01",
    "2024-02-01T10:00:00Z",
    "1.2.3",
    "v1.2",
    "1.2.3-rc.1",
    "1_0",
    [],
    [1],
    ["a"],
    [1, 2],
    {},
    {"a": 1},
    "a.b",
    "length",
    "1,2",
]
FUZZ_KEYS = ["s", "n", "l", "d", "missing", "nested.x", "nested.l.0", "l.length", "s.0", "nested"]
FUZZ_BINARY = ["==", "!=", "===", "!==", "<", ">", "<=", ">=", "in", "starts_with", "ends_with"]
FUZZ_BINARY += ["+", "-", "*", "/", "%", "min", "max", "cat", "merge", "substr", "missing"]


def fuzz_leaf(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if roll < 0.45:
        key = rng.choice(FUZZ_KEYS)
        return {"var": [key, rng.choice(FUZZ_VALUES)]} if rng.random() < 0.2 else {"var": key}
    if roll < 0.55 and depth > 0:
        return fuzz_expr(rng, depth - 1)
    value = rng.choice(FUZZ_VALUES)
    return [value] if isinstance(value, dict) else value


def fuzz_expr(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if roll < 0.5:
        op = rng.choice(FUZZ_BINARY)
        args = [fuzz_leaf(rng, depth) for _ in range(rng.choice([2, 2, 2, 1, 3]))]
        if op in ("starts_with", "ends_with"):
            args = [args[0], rng.choice(["a", "", "1", "v"])]
        if op == "in" and rng.random() < 0.5:
            args = [args[0], rng.choice([["a", 1, True, None, [1], 1.5], "abc1truenull"])]
        return {op: args}
    if roll < 0.6:
        op = rng.choice(["=", "!=", "<", "<=", ">", ">=", "^", "~"])
        return {"sem_ver": [fuzz_leaf(rng, depth), op, rng.choice(["1.2.3", "v2", "1.2"])]}
    if roll < 0.72:
        op = rng.choice(["if", "?:", "and", "or"])
        return {op: [fuzz_leaf(rng, depth) for _ in range(rng.randint(0, 5))]}
    if roll < 0.8:
        return {rng.choice(["!", "!!"]): [fuzz_leaf(rng, depth)]}
    if roll < 0.88:
        op = rng.choice(["map", "filter", "all", "some", "none", "reduce"])
        sub = rng.choice(
            [
                {"var": ""},
                {"==": [{"var": ""}, 1]},
                {">": [{"var": ""}, 0]},
                {"+": [{"var": "current"}, {"var": "accumulator"}]},
            ]
        )
        items = rng.choice([{"var": "l"}, {"var": "nested.l"}, [1, 2, "a"], {"var": "s"}, []])
        return {op: [items, sub, 0] if op == "reduce" else [items, sub]}
    if roll < 0.95:
        fractions = [["a", rng.randint(0, 3)], ["b", rng.randint(0, 3)], [rng.choice(["c", 1]), 1]]
        if rng.random() < 0.5:
            return {"fractional": fractions}
        return {"fractional": [fuzz_leaf(rng, depth), *fractions]}
    return {"var": rng.choice([*FUZZ_KEYS, "", 0, 1])}


def fuzz_data(rng: random.Random) -> dict[str, Any]:
    data = {k: rng.choice(FUZZ_VALUES) for k in ("s", "n", "l", "d") if rng.random() < 0.8}
    if rng.random() < 0.7:
        data["nested"] = {"x": rng.choice(FUZZ_VALUES), "l": [rng.choice(FUZZ_VALUES)]}
    data["targetingKey"] = rng.choice([None, "", "user-1", "user-2", 5])
    data["$flagd"] = {"flagKey": "fk", "timestamp": NOW}
    return data


def outcome(fn: Any) -> tuple[str, str]:
    try:
        return "value", repr(fn())
    except Exception as exc:
        return "raises", type(exc).__name__


def test_operators_agree_with_panzi_json_logic() -> None:
    rng = random.Random(7)
    compared = 0
    for _ in range(6_000):
        expr = fuzz_expr(rng, rng.randint(0, 3))
        try:
            rule = compile_logic(expr)
        except FlagdParseError:
            continue
        for _ in range(4):
            data = fuzz_data(rng)
            ours = outcome(lambda rule=rule, data=data: rule(data))
            theirs = outcome(lambda expr=expr, data=data: jsonLogic(expr, data, OPERATORS))
            assert ours == theirs, f"{expr!r} on {data!r}"
            compared += 1
    assert compared > 20_000


def test_shorthand_bucket_key_is_canonical_cbor() -> None:
    rng = random.Random(3)
    alphabet = "abcXYZ019-_@.é€😀 "
    for size in [0, 1, 22, 23, 24, 25, 255, 256, 65535, 65536, *range(2, 60)]:
        text = "".join(rng.choice(alphabet) for _ in range(size))
        for flag_key in ("f", text, "flag-" + text[:5]):
            assert _pair_key(flag_key, text) == cbor2.dumps([flag_key, text], canonical=True)
    assert _pair_key("f", "\ud800") is None  # cbor2 cannot encode it either: fractional -> null


# --- fractional -------------------------------------------------------------------------------


def shares(flag_definition: dict[str, Any], keys: int) -> dict[str, float]:
    flag = compile_flag("rollout", flag_definition)
    counts: dict[str, int] = {}
    for i in range(keys):
        variant = evaluate(flag, {"targetingKey": f"user-{i}"}, now=NOW).variant
        counts[variant] = counts.get(variant, 0) + 1
    return {variant: count / keys for variant, count in counts.items()}


@pytest.mark.parametrize("weights", [{"a": 50, "b": 50}, {"a": 10, "b": 30, "c": 60}])
def test_fractional_shares_match_weights(weights: dict[str, int]) -> None:
    definition = {
        "state": "ENABLED",
        "variants": {name: name for name in weights},
        "defaultVariant": next(iter(weights)),
        "targeting": {"fractional": [[name, weight] for name, weight in weights.items()]},
    }
    observed = shares(definition, 100_000)
    total = sum(weights.values())
    for name, weight in weights.items():
        assert abs(observed.get(name, 0) - weight / total) <= 0.01, observed


def test_rollout_stages_are_monotonic() -> None:
    keys = [f"user-{i}" for i in range(100_000)]
    previously_on: set[str] = set()
    for percent in (0, 5, 25, 50, 100):
        flag = compile_flag(
            "checkout-rollout",
            {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {"fractional": [["on", percent], ["off", 100 - percent]]},
            },
        )
        on = {key for key in keys if evaluate(flag, {"targetingKey": key}, now=NOW).value}
        assert previously_on <= on, f"keys left 'on' when the rollout grew to {percent}%"
        assert abs(len(on) / len(keys) - percent / 100) <= 0.01
        previously_on = on


# --- reasons, errors, portal differences ------------------------------------------------------


def make_flag(targeting: Any, **extra: Any) -> Any:
    definition = {
        "state": "ENABLED",
        "variants": {"on": "ON", "off": "OFF"},
        "defaultVariant": "off",
        "targeting": targeting,
    }
    definition.update(extra)
    return compile_flag("f", definition)


def test_reasons() -> None:
    assert evaluate(make_flag(None), {}).reason == "STATIC"
    assert evaluate(make_flag({}), {}).reason == "STATIC"
    result = evaluate(make_flag({"if": [{"var": "x"}, "on"]}), {})
    assert (result.value, result.variant, result.reason) == ("OFF", "off", "DEFAULT")
    result = evaluate(make_flag({"if": [{"var": "x"}, "on"]}), {"x": 1})
    assert (result.value, result.variant, result.reason) == ("ON", "on", "TARGETING_MATCH")
    split = make_flag({"if": [{"var": "x"}, "off", {"fractional": [["on", 1]]}]})
    assert evaluate(split, {"targetingKey": "k"}).reason == "SPLIT"
    assert evaluate(split, {"targetingKey": "k", "x": True}).reason == "TARGETING_MATCH"
    assert evaluate(split, {}).reason == "DEFAULT"  # no targetingKey: fractional is null
    via_or = make_flag({"or": [{"var": "x"}, {"fractional": [["on", 1]]}]})
    assert evaluate(via_or, {"targetingKey": "k"}).reason == "SPLIT"
    wrapped = make_flag({"cat": [{"fractional": [["o", 1]]}, "n"]})
    assert evaluate(wrapped, {"targetingKey": "k"}).reason == "TARGETING_MATCH"
    no_default = compile_flag(
        "f", {"state": "ENABLED", "variants": {"on": 1}, "targeting": {"var": "x"}}
    )
    result = evaluate(no_default, {})
    assert (result.value, result.variant, result.reason) == (None, None, "DEFAULT")


def test_disabled_returns_the_default_variant() -> None:
    result = evaluate(make_flag(None, state="DISABLED"), {})
    assert (result.value, result.variant, result.reason) == ("OFF", "off", "DISABLED")
    result = evaluate(make_flag(None, state="DISABLED", defaultVariant=None), {})
    assert (result.value, result.variant, result.reason) == (None, None, "DISABLED")


def test_errors_are_results() -> None:
    result = evaluate(make_flag({"var": "x"}), {"x": "nope"})
    assert (result.reason, result.error_code, result.variant) == ("ERROR", "GENERAL", None)
    assert "nope" in result.error_details
    result = evaluate(make_flag({"if": [{"/": [1, {"var": "x"}]}, "on"]}), {"x": 0})
    assert (result.reason, result.error_code) == ("ERROR", "GENERAL")
    assert "ZeroDivisionError" in result.error_details
    bad_default = make_flag({"var": "x"}, defaultVariant="missing")
    assert evaluate(bad_default, {}).reason == "ERROR"
    assert evaluate(bad_default, {"x": "on"}).reason == "TARGETING_MATCH"


def test_boolean_variants_and_now() -> None:
    flag = compile_flag(
        "f",
        {
            "state": "ENABLED",
            "variants": {"true": 1, "false": 0},
            "defaultVariant": False,
            "targeting": {">": [{"var": "$flagd.timestamp"}, 1000]},
        },
    )
    assert flag.default_variant == "false"
    assert evaluate(flag, {}, now=1001).variant == "true"
    assert evaluate(flag, {}, now=999).variant == "false"
    assert evaluate(flag, {}).variant == "true"  # the real clock
    key_flag = make_flag({"if": [{"==": [{"var": "$flagd.flagKey"}, "f"]}, "on", "off"]})
    assert evaluate(key_flag, {"$flagd": {"flagKey": "spoofed"}}).variant == "on"


def test_metadata_is_merged() -> None:
    flags = compile_flag_set(FLAG_SET)
    assert flags["new-checkout"].metadata == {"team": "payments", "version": 3, "owner": "checkout"}
    assert flags["banner"].metadata == {"team": "payments", "version": 3}


# --- compile errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("targeting", "message"),
    [
        ({"if": [{"frobnicate": [1]}, "on"]}, "unknown operator 'frobnicate'"),
        ({"if": [{"$ref": "nope"}, "on"]}, "unknown operator '$ref'"),
        ({"var.x": "y"}, "unknown operator 'var.x'"),
        ({"regex": [{"var": "email"}, "a(b"]}, "invalid regular expression"),
        ({"regex": [{"var": "email"}, "a" * 257]}, "at most 256"),
        ({"regex": [{"var": "email"}, {"var": "p"}]}, "constant string"),
        ({"regex": [{"var": "email"}]}, "exactly 2 arguments"),
        ({"sem_ver": [{"var": "v"}, "=>", "1.0.0"]}, "unsupported operator '=>'"),
        ({"sem_ver": [{"var": "v"}, ">=", "one"]}, "not a version"),
        ({"sem_ver": [{"var": "v"}, ">="]}, "exactly 3 arguments"),
        ({"starts_with": [{"var": "v"}, 1]}, "must be a string"),
        ({"fractional": [["on", "50"], ["off", 50]]}, "integer weight"),
        ({"fractional": []}, "at least one variant"),
        ({"var": ["a", 1, 2]}, "at most 2 arguments"),
        ({"if": [True, "on"], "else": "off"}, "single operation"),
        ("on", "must be an object"),
    ],
)
def test_compile_errors(targeting: Any, message: str) -> None:
    with pytest.raises(FlagdParseError, match=message.replace("(", r"\(").replace("$", r"\$")):
        make_flag(targeting)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"state": "ON", "variants": {"a": 1}}, "Incorrect 'state'"),
        ({"variants": {"a": 1}}, "Incorrect 'state'"),
        ({"state": "ENABLED", "variants": {}}, "'variants' must be a non-empty object"),
        ({"state": "ENABLED", "variants": ["a"]}, "'variants' must be a non-empty object"),
        ({"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": 3}, "defaultVariant"),
        ({"state": "ENABLED", "variants": {"a": 1}, "metadata": {"k": None}}, "metadata 'k'"),
        ({"state": "ENABLED", "variants": {"a": 1}, "metadata": {"": 1}}, "metadata keys"),
        ({"state": "ENABLED", "variants": {"a": 1}, "description": "x"}, "unknown keys"),
    ],
)
def test_flag_validation(definition: dict[str, Any], message: str) -> None:
    with pytest.raises(FlagdParseError, match=message):
        compile_flag("f", definition)


def test_flag_set_validation() -> None:
    with pytest.raises(FlagdParseError, match="not valid JSON"):
        compile_flag_set("{")
    with pytest.raises(FlagdParseError, match="`flags`"):
        compile_flag_set({"flags": []})
    with pytest.raises(FlagdParseError, match="`metadata`"):
        compile_flag_set({"flags": {}, "metadata": []})
    with pytest.raises(FlagdParseError, match="flag 'x': targeting: unknown operator '\\$ref'"):
        compile_flag_set(
            {
                "$evaluators": {"a": {"var": "x"}},
                "flags": {
                    "x": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"$ref": "b"}}
                },
            }
        )
    document = copy.deepcopy(FLAG_SET)
    assert compile_flag_set(document)["banner"].targeting["if"][0] == {
        "ends_with": [{"var": "email"}, "@example.com"]
    }
    assert document == FLAG_SET  # not mutated


# --- the regex extension ----------------------------------------------------------------------


def test_regex_extension() -> None:
    rule = compile_logic({"regex": [{"var": "email"}, r"@(corp|example)\.io$"]})
    assert rule({"email": "ana@corp.io"}) is True
    assert rule({"email": "ana@corp.io.evil"}) is False
    assert rule({"email": 5}) is False
    assert rule({}) is False
    assert rule({"email": ["ana@corp.io"]}) is False
    partial = compile_logic({"regex": [{"var": "v"}, "^2\\."]})
    assert partial({"v": "2.1"}) and not partial({"v": "12.1"})
    flag = make_flag({"if": [{"regex": [{"var": "email"}, "^qa\\+"]}, "on", "off"]})
    assert evaluate(flag, {"email": "qa+1@x.io"}).variant == "on"
    assert evaluate(flag, {"email": "dev@x.io"}).variant == "off"
    assert compile_logic({"regex": [{"var": "e"}, "a" * 256]})({"e": "a" * 256}) is True
    assert {"regex"} == PORTAL_ONLY_OPERATORS


def test_operators_used() -> None:
    assert operators_used(release_targeting()) == {
        "if",
        "in",
        "var",
        "and",
        "ends_with",
        "==",
        "starts_with",
        "sem_ver",
        "<",
        "!=",
        ">=",
        "!",
        ">",
        "fractional",
    }
    expr = {"or": [{"regex": [{"var": "e"}, "x"]}, {"reduce": [[1], {"+": [1]}, {"cat": [1]}]}]}
    assert operators_used(expr) == {"or", "regex", "var", "reduce", "+"}
    assert operators_used({"a": 1, "b": {"var": "x"}}) == set()
