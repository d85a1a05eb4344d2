"""A realistic flagd flag shared by the evaluator tests and bench/flags_eval.py: a release flag
with ten targeting rules (lists, prefixes and suffixes, semver, numbers, nested attributes) and a
20/80 fractional fallthrough."""

from __future__ import annotations

from typing import Any

INTERNAL = ["ana@corp.io", "bo@corp.io", "cy@corp.io", "di@corp.io", "ed@corp.io"]

RELEASE_RULES: list[tuple[dict[str, Any], str]] = [
    ({"in": [{"var": "email"}, INTERNAL]}, "on"),
    (
        {
            "and": [
                {"ends_with": [{"var": "email"}, "@example.com"]},
                {"==": [{"var": "country"}, "DE"]},
            ]
        },
        "on",
    ),
    (
        {
            "and": [
                {"starts_with": [{"var": "email"}, "qa+"]},
                {"sem_ver": [{"var": "appVersion"}, ">=", "2.0.0"]},
            ]
        },
        "on",
    ),
    (
        {
            "and": [
                {"in": [{"var": "plan"}, ["enterprise", "business"]]},
                {"<": [{"var": "age"}, 30]},
            ]
        },
        "off",
    ),
    (
        {
            "and": [
                {"in": [{"var": "country"}, ["FR", "IT", "ES"]]},
                {"sem_ver": [{"var": "appVersion"}, "<", "1.5.0"]},
            ]
        },
        "off",
    ),
    ({"and": [{"==": [{"var": "beta"}, True]}, {"==": [{"var": "plan"}, "pro"]}]}, "on"),
    (
        {
            "and": [
                {"in": ["early-access", {"var": "tags"}]},
                {"!=": [{"var": "country"}, "US"]},
            ]
        },
        "on",
    ),
    (
        {
            "and": [
                {"in": [{"var": "company"}, "acme,globex,initech"]},
                {">=": [{"var": "score"}, 0.8]},
            ]
        },
        "on",
    ),
    (
        {
            "and": [
                {"sem_ver": [{"var": "appVersion"}, "^", "3.0.0"]},
                {"<": [{"var": "age"}, 18]},
                {"!": {"var": "beta"}},
            ]
        },
        "off",
    ),
    (
        {
            "and": [
                {"==": [{"var": "org.tier"}, "gold"]},
                {">": [{"var": "org.seats"}, 100]},
                {"starts_with": [{"var": "appVersion"}, "4"]},
            ]
        },
        "on",
    ),
]
RELEASE_SPLIT = {"fractional": [["on", 20], ["off", 80]]}


def release_flag() -> dict[str, Any]:
    branches: list[Any] = []
    for condition, variant in RELEASE_RULES:
        branches += [condition, variant]
    return {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"if": [*branches, RELEASE_SPLIT]},
    }
