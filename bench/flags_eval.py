"""In-process flag evaluation: the compiled evaluator (apps.flags.evaluation) against flagd's
reference evaluator (openfeature-flagd-core's FlagdCore) on the same flag and contexts.

Flag: a boolean release flag with 10 targeting rules of 1-3 conditions on context attributes
(in a list, in a string, ==, !=, starts_with, ends_with, sem_ver, <, >, >=, !) and a 20/80
fractional split as fallthrough, like tests/flags/test_evaluator.py's new-checkout.
Contexts: EVALUATIONS (default 50,000) varied contexts from a seeded generator (10 attributes,
~15 % of them missing, now and then of the wrong type; a targetingKey on 95 %), built before
timing; each evaluator gets its own prebuilt form (OFREP dict / EvaluationContext).

Timing, timeit-style: garbage collection off, the contexts evaluated in batches of BATCH (50)
timed with perf_counter_ns, so the timer's own cost is spread over the batch; per-evaluation
time = batch time / BATCH. Median and p95 are over the batches of ROUNDS passes (default 3)
after a warm-up pass. The same for FlagdCore.resolve_boolean_value (one pass; it is slower).
Both evaluators' answers are compared on every context first (value, variant, reason with
SPLIT = TARGETING_MATCH); a disagreement is an error.

Target: median <= 20 us per evaluation for ours. Results: bench/results/flags_eval.json.
Exits non-zero only on error (a disagreement, an exception), not on a missed target.
Does not need Django or a database. Env: BENCH_EVALUATIONS, BENCH_ROUNDS, BENCH_BATCH.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from apps.flags.evaluation import compile_flag, evaluate
from tests.flags.sample_flags import INTERNAL, RELEASE_RULES, release_flag

NAME = "flags_eval"
EVALUATIONS = int(os.environ.get("BENCH_EVALUATIONS", "50000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BATCH = int(os.environ.get("BENCH_BATCH", "50"))
TARGET_MEDIAN_US = 20.0
FLAG_KEY = "new-checkout"
NOW = 1_750_000_000


def flag_definition() -> dict[str, Any]:
    return release_flag()


def make_contexts(count: int) -> list[dict[str, Any]]:
    rng = random.Random(1234)
    versions = ["1.0.0", "1.4.9", "2.0.0", "2.1.3", "3.0.0", "3.2.1-beta.1", "v3.1", "4.0.0"]
    versions += [f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}" for _ in range(40)]
    contexts = []
    for i in range(count):
        pools: dict[str, list[Any]] = {
            "email": [*INTERNAL, f"u{i}@example.com", f"qa+{i}@corp.io", f"user{i}@gmail.com", 7],
            "country": ["DE", "US", "FR", "IT", "ES", "GB", "BR", "IN", None],
            "plan": ["enterprise", "business", "pro", "free", "trial"],
            "appVersion": [*versions, "banana"],
            "age": [*range(12, 70, 3), "17"],
            "beta": [True, False, False],
            "tags": [["early-access"], ["x", "y"], [], ["x"]],
            "company": ["acme", "globex", "initech", "umbrella", "hooli"],
            "score": [0.1, 0.5, 0.79, 0.8, 0.95],
            "org": [{"tier": "gold", "seats": 150}, {"tier": "silver", "seats": 20}],
        }
        context: dict[str, Any] = {
            name: rng.choice(pool) for name, pool in pools.items() if rng.random() < 0.85
        }
        if rng.random() < 0.95:
            context["targetingKey"] = f"user-{rng.randrange(10**9)}"
        contexts.append(context)
    return contexts


def timed_batches(call: Any, inputs: list[Any], rounds: int) -> list[float]:
    """Per-evaluation microseconds of each batch of BATCH calls."""
    samples = []
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for start in range(0, len(inputs) - BATCH + 1, BATCH):
                batch = inputs[start : start + BATCH]
                began = clock()
                for item in batch:
                    call(item)
                samples.append((clock() - began) / BATCH / 1000)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": round(statistics.median(ordered), 3),
        "p95_us": round(common.percentile(ordered, 95), 3),
        "mean_us": round(statistics.fmean(ordered), 3),
        "min_us": round(ordered[0], 3),
        "batches": len(ordered),
    }


def check_agreement(flag: Any, core: Any, contexts: list[dict], reference: list[Any]) -> dict:
    reasons: dict[str, int] = {}
    for context, ec in zip(contexts, reference, strict=True):
        ours = evaluate(flag, context, now=NOW)
        theirs = core.resolve_boolean_value(FLAG_KEY, False, ec)
        reason = "TARGETING_MATCH" if ours.reason == "SPLIT" else ours.reason
        expected = (theirs.value, theirs.variant, theirs.reason.value)
        if (ours.value, ours.variant, reason) != expected:
            raise RuntimeError(f"disagreement on {context!r}: ours {ours}, flagd-core {theirs}")
        reasons[ours.reason] = reasons.get(ours.reason, 0) + 1
    return reasons


def main() -> int:
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    logging.getLogger("openfeature.contrib").setLevel(logging.CRITICAL)
    common.log(f"{EVALUATIONS} contexts, batches of {BATCH}, {ROUNDS} rounds (ours)")
    started = time.perf_counter()
    flag = compile_flag(FLAG_KEY, flag_definition())
    compile_us = (time.perf_counter() - started) * 1e6
    core = FlagdCore()
    core.set_flags({"flags": {FLAG_KEY: flag_definition()}})
    contexts = make_contexts(EVALUATIONS)
    reference = [
        EvaluationContext(
            targeting_key=c.get("targetingKey"),
            attributes={k: v for k, v in c.items() if k != "targetingKey"},
        )
        for c in contexts
    ]
    reasons = check_agreement(flag, core, contexts, reference)
    common.log(f"agreement on all {len(contexts)} contexts; reasons {reasons}")

    def ours(context: dict[str, Any]) -> Any:
        return evaluate(flag, context)

    def theirs(ec: Any) -> Any:
        return core.resolve_boolean_value(FLAG_KEY, False, ec)

    timed_batches(ours, contexts, 1)  # warm-up
    ours_stats = summary(timed_batches(ours, contexts, ROUNDS))
    common.log(f"ours:      median {ours_stats['median_us']} us, p95 {ours_stats['p95_us']} us")
    timed_batches(theirs, reference[:2000], 1)
    core_stats = summary(timed_batches(theirs, reference, 1))
    common.log(f"flagd-core: median {core_stats['median_us']} us, p95 {core_stats['p95_us']} us")

    ratio_median = core_stats["median_us"] / ours_stats["median_us"]
    ratio_p95 = core_stats["p95_us"] / ours_stats["p95_us"]
    met = ours_stats["median_us"] <= TARGET_MEDIAN_US
    common.log(
        f"flagd-core / ours: {ratio_median:.1f}x (median), {ratio_p95:.1f}x (p95); "
        f"target median <= {TARGET_MEDIAN_US} us: {'met' if met else 'MISSED'}"
    )
    common.write_result(
        NAME,
        {
            "machine": common.machine(),
            "flag": {"rules": len(RELEASE_RULES), "fallthrough": "fractional 20/80"},
            "evaluations": len(contexts),
            "batch": BATCH,
            "rounds_ours": ROUNDS,
            "compile_us": round(compile_us, 1),
            "reasons": reasons,
            "ours": ours_stats,
            "flagd_core": core_stats,
            "ratio_flagd_core_over_ours": {
                "median": round(ratio_median, 2),
                "p95": round(ratio_p95, 2),
            },
            "target": {"median_us": TARGET_MEDIAN_US, "met": met},
        },
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:
        sys.exit(f"failed: {exc}".splitlines()[0])
