"""The admin's conditions compiled to JsonLogic: what each operator matches (a comparison on a
missing attribute never matches), and that flagd's reference evaluator agrees on every case."""

from __future__ import annotations

import copy

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from apps.flags import rules
from apps.flags.evaluation import compile_flag, evaluate

MISSING = object()
# (op, value, attribute values that match, attribute values that do not)
CASES = [
    ("equals", "pro", ["pro"], ["Pro", ["pro"], None, MISSING, 1]),
    ("equals", 17, [17, 17.0], ["17", None, MISSING]),
    ("not_equals", "pro", ["free", 1], ["pro", None, MISSING]),
    ("in", ["SA", "AE"], ["SA", "AE"], ["sa", "S", None, MISSING]),
    ("not_in", ["SA", "AE"], ["CA", 3], ["SA", None, MISSING]),
    ("contains", "beta", ["open-beta", ["beta", "x"]], ["BETA", ["betas"], None, MISSING]),
    ("starts_with", "qa+", ["qa+1@x.io"], ["x-qa+", 12, None, MISSING]),
    ("ends_with", "@acme.example", ["ana@acme.example"], ["ana@acme.example.com", MISSING]),
    ("regex", r"^user-\d+$", ["user-12"], ["user-x", 12, MISSING]),
    ("lt", 18, [17, 0, -1.5], [18, "17", None, MISSING, [1], "abc"]),
    ("gte", 18, [18, 40.5], [17, "40", None, MISSING]),
    ("semver_gte", "5.2.0", ["5.2.0", "v5.10", "6"], ["5.1.9", "5.2.0-rc.1", "junk", MISSING]),
    ("semver_lt", "2.0.0", ["1.9.9"], ["2.0.0", MISSING]),
    ("before", "2026-12-01", ["2026-11-30", "2026-11-30T23:59:59Z"], ["2026-12-01", MISSING, 5]),
    (
        "after",
        "2026-12-01",
        ["2026-12-02", "2026-12-02T00:00:00Z"],
        ["2026-12-01T10:00:00Z", MISSING],
    ),
    ("after", "2026-12-01T09:00:00Z", ["2026-12-01T09:00:01Z"], ["2026-12-01T08:00:00Z"]),
    ("is_set", None, ["", 0, False, "x"], [None, MISSING]),
    ("not_set", None, [None, MISSING], ["", 0]),
]


def _definition(condition: dict) -> dict:
    logic = rules.conditions_logic(condition)
    return {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"if": [logic, "on"]},
    }


def _context(value) -> dict:
    return {"targetingKey": "u1"} if value is MISSING else {"targetingKey": "u1", "attr": value}


@pytest.mark.parametrize("op, value, matching, other", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_operator_matches_what_a_user_expects(op, value, matching, other):
    condition = {"attribute": "attr", "op": op, "value": value}
    rules.validate_conditions(condition)
    flag = compile_flag("f", _definition(condition))
    for attribute in matching:
        assert evaluate(flag, _context(attribute)).variant == "on", (op, value, attribute)
    for attribute in other:
        assert evaluate(flag, _context(attribute)).variant == "off", (op, value, attribute)


FLAGD_CASES = [case for case in CASES if case[0] != "regex"]  # regex is portal-only


@pytest.mark.parametrize(
    "op, value, matching, other", FLAGD_CASES, ids=[f"{c[0]}-{c[1]}" for c in FLAGD_CASES]
)
def test_flagd_reference_agrees(op, value, matching, other):
    definition = _definition({"attribute": "attr", "op": op, "value": value})
    reference = FlagdCore()
    reference.set_flags({"flags": {"f": copy.deepcopy(definition)}})  # it renames keys in place
    ours = compile_flag("f", definition)
    for attribute in [*matching, *other]:
        context = _context(attribute)
        attributes = {k: v for k, v in context.items() if k != "targetingKey"}
        expected = reference.resolve_boolean_value(
            "f", False, EvaluationContext(targeting_key="u1", attributes=attributes)
        )
        assert evaluate(ours, context).variant == expected.variant, (op, value, attribute)


def test_groups_and_segments_nest():
    condition = {
        "all": [
            {"attribute": "market", "op": "in", "value": ["SA", "AE"]},
            {"none": [{"attribute": "cohort", "op": "equals", "value": "excluded"}]},
            {
                "any": [
                    {"attribute": "plan", "op": "equals", "value": "pro"},
                    {"attribute": "beta", "op": "is_set"},
                ]
            },
        ]
    }
    flag = compile_flag("f", _definition(condition))
    assert evaluate(flag, {"market": "SA", "plan": "pro"}).variant == "on"
    assert evaluate(flag, {"market": "SA", "beta": True}).variant == "on"
    assert evaluate(flag, {"market": "SA", "plan": "pro", "cohort": "excluded"}).variant == "off"
    assert evaluate(flag, {"market": "CA", "plan": "pro"}).variant == "off"


@pytest.mark.parametrize(
    "condition, field",
    [
        ({"attribute": "a", "op": "regex", "value": "(x"}, "conditions.value"),
        ({"attribute": "a", "op": "regex", "value": "x" * 257}, "conditions.value"),
        ({"attribute": "a", "op": "lt", "value": "ten"}, "conditions.value"),
        ({"attribute": "a", "op": "before", "value": "2026-13-01"}, "conditions.value"),
        ({"attribute": "a", "op": "in", "value": []}, "conditions.value"),
        ({"attribute": "", "op": "equals", "value": 1}, "conditions.attribute"),
        ({"all": []}, "conditions.all"),
        (
            {
                "all": [
                    {
                        "any": [
                            {
                                "none": [
                                    {
                                        "all": [
                                            {"any": [{"all": [{"attribute": "a", "op": "is_set"}]}]}
                                        ]
                                    }
                                ]
                            }
                        ]
                    }
                ]
            },
            "conditions.all[0].any[0].none[0].all[0].any[0]",
        ),
        ({"segment": "x"}, "conditions.segment"),
    ],
)
def test_invalid_conditions_name_the_field(condition, field):
    with pytest.raises(rules.RuleError) as raised:
        rules.validate_conditions(condition)
    assert field in raised.value.errors, raised.value.errors


def test_fallthrough_equal_to_the_default_reports_default():
    logic = rules.targeting_logic(
        [{"conditions": {"attribute": "a", "op": "equals", "value": 1}, "variant": "on"}],
        {"variant": "off"},
        "off",
    )
    flag = compile_flag(
        "f",
        {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": logic,
        },
    )
    assert evaluate(flag, {"a": 2}).reason == "DEFAULT"
    assert rules.targeting_logic([], {}, "off") is None
