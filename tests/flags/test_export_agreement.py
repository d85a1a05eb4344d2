"""The flags the portal exports (its demo environment: segments, rules, splits, a rollout, a
killed flag) evaluate the same in the portal and in flagd's reference evaluator on 10,000
random contexts."""

from __future__ import annotations

import copy
import random

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from apps.flags.demo import load_demo
from apps.flags.evaluation import compile_flag_set, evaluate
from apps.flags.flagd import environment_document
from apps.flags.models import Environment
from apps.tenancy.services import create_tenant

pytestmark = pytest.mark.django_db
CONTEXTS = 10_000


def _random_context(rng: random.Random) -> dict:
    pools = {
        "market": ["SA", "AE", "CA", "US", "sa", None, 7],
        "cohort": ["pilot", "general", None],
        "email": ["ana@acme.example", "bob@example.com", "x@acme.example.org", None],
        "app_version": ["5.2.0", "5.1.9", "6.0", "v5.10.1", "junk", None, 5],
    }
    context = {name: rng.choice(pool) for name, pool in pools.items() if rng.random() < 0.8}
    context = {name: value for name, value in context.items() if value is not None}
    if rng.random() < 0.97:
        context["targetingKey"] = f"user-{rng.randrange(10**9)}"
    return context


def test_exported_flags_agree_with_flagd_on_random_contexts():
    tenant = create_tenant(slug="demo", name="Demo")
    assert load_demo(tenant)
    rng = random.Random(11)
    compared = 0
    for environment in Environment.objects.filter(tenant=tenant):
        document = environment_document(environment)
        ours = compile_flag_set(document)
        reference = FlagdCore()
        reference.set_flags(copy.deepcopy(document))
        for _ in range(CONTEXTS // 3 + 1):
            context = _random_context(rng)
            attributes = {k: v for k, v in context.items() if k != "targetingKey"}
            evaluation_context = EvaluationContext(
                targeting_key=context.get("targetingKey"), attributes=attributes
            )
            for key, flag in ours.items():
                mine = evaluate(flag, context)
                theirs = reference._resolve(key, None, evaluation_context)  # untyped
                if mine.reason == "DISABLED":
                    assert theirs.reason == "DISABLED", key
                    continue
                assert (mine.value, mine.variant) == (theirs.value, theirs.variant), (key, context)
                expected = "TARGETING_MATCH" if mine.reason == "SPLIT" else mine.reason
                assert expected == theirs.reason, (key, context)
                compared += 1
    assert compared > 10_000 * 3
