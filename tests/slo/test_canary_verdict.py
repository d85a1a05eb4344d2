"""Canary analysis rules (apps.slo.canary) on synthetic minute series: pure, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.slo.canary import (
    SUSTAINABLE,
    CanaryPolicy,
    Check,
    MinuteFigures,
    Totals,
    Verdict,
    check_minute,
    two_proportion_z,
    verdict,
)

START = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
POLICY = CanaryPolicy()
HEALTHY = MinuteFigures(requests=1000, errors=1, p95_ms=300.0)  # 0.10 % errors
BASELINE = MinuteFigures(requests=9000, errors=9, p95_ms=300.0)  # 90 % of traffic, 0.10 %

Minutes = list[MinuteFigures | None]


def fig(requests: int = 1000, errors: int = 1, p95_ms: float | None = 300.0) -> MinuteFigures:
    return MinuteFigures(requests, errors, p95_ms)


def totals(minutes: Minutes) -> Totals:
    present = [m for m in minutes if m is not None]
    return Totals(sum(m.requests for m in present), sum(m.errors for m in present))


def run(
    canary: Minutes,
    baseline: Minutes | MinuteFigures | None = BASELINE,
    policy: CanaryPolicy = POLICY,
) -> tuple[list[Check], Verdict]:
    """One check per minute from START, then the verdict over all of them."""
    baselines = baseline if isinstance(baseline, list) else [baseline] * len(canary)
    checks = [
        check_minute(START + timedelta(minutes=i), c, b, policy)
        for i, (c, b) in enumerate(zip(canary, baselines, strict=True))
    ]
    return checks, verdict(checks, totals(canary), totals(baselines), policy)


def test_healthy_canary_is_promoted_after_the_analysis():
    checks, v = run([HEALTHY] * 30)
    assert all(c.passed and c.failures == () for c in checks)
    assert v.decision == "promote"
    assert v.reasons == (
        "Analysis complete after 30 minutes: canary availability 99.90% over 30,000 requests"
        " (baseline 99.90%), latest p95 300 ms (baseline 300 ms), 0 failed checks in the last"
        " 10 minutes.",
    )
    f = v.figures
    assert (f["checks"], f["failed_checks_in_window"], f["minutes_analysed"]) == (30, 0, 30)
    assert f["canary"] == {
        "requests": 30_000,
        "errors": 30,
        "error_ratio": 0.001,
        "availability": 0.999,
        "latest_p95_ms": 300.0,
    }
    assert f["baseline"]["requests"] == 270_000
    assert f["sustained"] == []
    assert f["thresholds"] == POLICY.to_dict()
    assert json.loads(json.dumps(v.to_dict())) == v.to_dict()


def test_healthy_canary_continues_before_the_analysis_is_complete():
    _, v = run([HEALTHY] * 20)
    assert v.decision == "continue"
    assert v.reasons == ("Analysing: 20 of 30 minutes; 0 failed checks in the last 10 minutes.",)


def test_sustained_slow_canary_rolls_back_naming_p95():
    slow = [fig(p95_ms=900.0)] * 9 + [fig(p95_ms=1240.0)]
    baseline = fig(9000, 9, 700.0)  # 900 < 700 x 1.5: only the absolute threshold, until 1,240
    checks, v = run([HEALTHY] * 5 + slow, baseline)
    assert [c.failures for c in checks[5:]] == [("p95",)] * 9 + [("p95", "p95_vs_baseline")]
    assert v.decision == "rollback"
    assert v.reasons == (
        "Canary p95 above 800 ms in each of the last 10 checks (latest 1,240 ms).",
    )
    assert v.figures["sustained"] == ["p95"]
    assert v.figures["canary"]["latest_p95_ms"] == 1240.0


def test_nine_slow_minutes_then_a_good_one_is_not_sustained():
    _, v = run([HEALTHY] * 5 + [fig(p95_ms=900.0)] * 9 + [HEALTHY])
    assert v.decision == "continue"
    assert v.reasons == ("Analysing: 15 of 30 minutes; 9 failed checks in the last 10 minutes.",)
    assert v.figures["failed_checks_in_window"] == 9
    assert v.figures["sustained"] == []


def test_missing_minutes_count_as_failing_for_the_p95_family_only():
    slow_or_dark: Minutes = [fig(p95_ms=900.0), None] * 5
    checks, v = run([HEALTHY] * 10 + slow_or_dark)
    assert [c.failures for c in checks[10:]] == [("p95", "p95_vs_baseline"), ("no_data",)] * 5
    assert v.decision == "rollback"
    # no_data counts for p95 (and error_ratio, which never failed), not for p95_vs_baseline
    assert v.figures["sustained"] == ["p95"]
    assert v.reasons == ("Canary p95 above 800 ms in each of the last 10 checks (latest 900 ms).",)


def test_erroring_canary_rolls_back():
    checks, v = run([HEALTHY] * 20 + [fig(1000, 10)] * 10)  # 1 % errors against 0.1 %
    assert checks[-1].failures == ("error_ratio", "errors_vs_baseline")
    assert v.decision == "rollback"
    assert v.reasons == (
        "Canary error ratio above 0.50% in each of the last 10 checks (latest 1.00%).",
        "Canary error ratio significantly above the baseline in each of the last 10 checks"
        " (latest 1.00% vs 0.10%, z = 6.20).",
    )
    assert v.figures["sustained"] == ["error_ratio", "errors_vs_baseline"]
    assert v.figures["canary"]["availability"] == pytest.approx(0.996)  # 120 of 30,000: fine


def test_too_little_traffic_continues_even_when_every_check_fails():
    checks, v = run([fig(5, 1, 900.0)] * 30)  # 20 % errors, slow: 150 requests in all
    assert not any(c.passed for c in checks)
    assert v.decision == "continue"
    assert v.reasons == ("Too little traffic: 150 canary requests, 200 needed before a verdict.",)
    assert v.figures["sustained"] == list(SUSTAINABLE)
    assert v.figures["canary"]["requests"] == 150


def test_dark_canary_rolls_back():
    checks, v = run([HEALTHY] * 20 + [None] * 10)
    assert checks[-1].failures == ("no_data",) and checks[-1].canary is None
    assert v.decision == "rollback"
    assert v.reasons == ("No canary data for 10 minutes (limit 10).",)
    assert v.figures["sustained"] == ["no_data"]


def test_dark_from_the_start_rolls_back_regardless_of_min_requests():
    zero = fig(0, 0, None)  # a row with no requests is no data either
    checks, v = run([zero] * 12)
    assert {c.failures for c in checks} == {("no_data",)}
    assert v.decision == "rollback"
    assert v.reasons == ("No canary data for 12 minutes (limit 10).",)
    assert v.figures["canary"]["availability"] is None


def test_nine_dark_minutes_wait():
    _, v = run([HEALTHY] * 20 + [None] * 9)
    assert v.decision == "continue"
    assert v.reasons == (
        "Analysing: 29 of 30 minutes; 9 failed checks in the last 10 minutes.",
        "Latest check failed (no_data); waiting.",
    )


def test_canary_significantly_worse_than_baseline_on_errors_rolls_back():
    canary, baseline = fig(2000, 8), fig(2000, 1)  # 0.40 % vs 0.05 %: under the 0.50 % limit
    checks, v = run([canary] * 10, baseline)
    assert checks[0].failures == ("errors_vs_baseline",)
    assert v.decision == "rollback"
    assert v.reasons == (
        "Canary error ratio significantly above the baseline in each of the last 10 checks"
        " (latest 0.40% vs 0.05%, z = 2.34).",
    )
    assert v.figures["sustained"] == ["errors_vs_baseline"]


def test_same_ratios_at_low_volume_are_not_significant():
    # 0.4 % cannot be a whole number of errors at 20 requests a minute; 1 in 250 is the least
    # traffic that carries that ratio. z = 1.75 < 2.326 although the delta (0.35 %) is met.
    canary, baseline = fig(250, 1), fig(2000, 1)
    assert two_proportion_z(1, 250, 1, 2000) == pytest.approx(1.75078, abs=1e-5)
    checks, v = run([canary] * 30, baseline)
    assert all(c.passed for c in checks)
    assert v.decision == "promote"


def test_small_differences_need_the_minimum_delta_however_significant():
    canary = fig(1_000_000, 1500)  # 0.15 % vs 0.10 % over a million requests: z is huge
    check = check_minute(START, canary, fig(9_000_000, 9000), POLICY)
    assert two_proportion_z(1500, 1_000_000, 9000, 9_000_000) > 10
    assert check.passed


def test_p95_worse_than_baseline_rolls_back():
    checks, v = run([fig(p95_ms=600.0)] * 10)  # under 800 ms but twice the baseline's 300
    assert checks[0].failures == ("p95_vs_baseline",)
    assert v.decision == "rollback"
    assert v.reasons == (
        "Canary p95 more than 1.5 times the baseline in each of the last 10 checks"
        " (latest 600 ms vs 300 ms).",
    )


@pytest.mark.parametrize(
    ("canary", "baseline", "failures"),
    [
        (fig(p95_ms=450.0), fig(9000, 9, 300.0), ()),  # exactly 1.5x is not worse
        (fig(p95_ms=600.0), None, ()),  # no baseline: nothing to compare with
        (fig(p95_ms=600.0), fig(9000, 9, 0.0), ()),
        (fig(p95_ms=600.0), fig(9000, 9, None), ()),
        (fig(p95_ms=None), fig(9000, 9, 300.0), ()),
        (fig(1000, 10, 900.0), None, ("p95", "error_ratio")),  # absolute limits still apply
        (fig(1000, 10, 900.0), fig(0, 0, None), ("p95", "error_ratio")),
        (None, BASELINE, ("no_data",)),
    ],
)
def test_check_minute_codes(canary, baseline, failures):
    check = check_minute(START, canary, baseline, POLICY)
    assert (check.failures, check.passed) == (failures, not failures)


def test_cumulative_availability_below_minimum_rolls_back():
    minutes: Minutes = [fig(1000, 0)] * 30
    minutes[10] = fig(1000, 160)  # one bad minute: 160 of 30,000 = 99.47 % available
    checks, v = run(minutes)
    assert checks[-1].passed
    assert v.decision == "rollback"
    assert v.reasons == ("Canary availability 99.47% below 99.50% over 30,000 requests.",)
    assert v.figures["sustained"] == []

    minutes[10] = fig(1000, 150)  # exactly 99.50 %: not below
    assert run(minutes)[1].decision == "promote"


def test_two_proportion_z_against_a_hand_computed_figure():
    # 8 of 2,000 vs 1 of 2,000: pooled p = 9 / 4,000 = 0.00225,
    # se = sqrt(0.00225 x 0.99775 x (1/2,000 + 1/2,000)) = sqrt(2.2449375e-6) = 0.00149831,
    # z = (0.004 - 0.0005) / 0.00149831 = 2.33596
    assert two_proportion_z(8, 2000, 1, 2000) == pytest.approx(2.33596, abs=1e-5)
    assert two_proportion_z(1, 2000, 8, 2000) == pytest.approx(-2.33596, abs=1e-5)
    assert two_proportion_z(0, 100, 0, 900) == 0.0  # zero variance: not significant
    assert two_proportion_z(100, 100, 900, 900) == 0.0
    assert two_proportion_z(1, 100, 0, 0) == 0.0


def test_policy_round_trip_and_defaults():
    assert CanaryPolicy.from_dict({}) == POLICY
    assert CanaryPolicy.from_dict(POLICY.to_dict()) == POLICY
    policy = CanaryPolicy.from_dict({"max_p95_ms": 1000, "sustain_minutes": 5})
    assert policy.max_p95_ms == 1000.0 and isinstance(policy.max_p95_ms, float)
    assert policy.to_dict()["sustain_minutes"] == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_p95": 900}, "max_p95: unknown field"),
        ({"max_p95_ms": "800"}, "max_p95_ms: expected a number, got '800'"),
        ({"sustain_minutes": 10.0}, "sustain_minutes: expected an integer, got 10.0"),
        ({"min_requests": True}, "min_requests: expected an integer, got True"),
        ({"min_availability": 1.5}, "min_availability: must be in [0, 1], got 1.5"),
        ({"max_p95_ms": float("nan")}, "max_p95_ms: must be > 0, got nan"),
        ({"max_error_ratio": 1}, "max_error_ratio: must be in [0, 1), got 1.0"),
        ({"sustain_minutes": 0}, "sustain_minutes: must be >= 1, got 0"),
        ({"max_p95_ratio": 0.9}, "max_p95_ratio: must be >= 1, got 0.9"),
        ({"z_threshold": -1}, "z_threshold: must be > 0, got -1.0"),
        ({"sustain_minutes": 31}, "sustain_minutes: must not exceed analysis_minutes"),
        (["max_p95_ms"], "policy: expected an object"),
    ],
)
def test_policy_validation_errors_name_the_field(data, message):
    with pytest.raises(ValueError) as excinfo:
        CanaryPolicy.from_dict(data)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("canary", "baseline"),
    [(fig(2000, 8, 412.5), fig(2000, 1, None)), (None, BASELINE), (None, None)],
)
def test_check_round_trips_through_json(canary, baseline):
    check = check_minute(START, canary, baseline, POLICY)
    stored = json.loads(json.dumps(check.to_dict()))
    assert Check.from_dict(stored) == check
    assert stored["minute"] == "2025-03-03T12:00:00+00:00"


def test_check_from_dict_rejects_unknown_codes():
    stored = check_minute(START, None, None, POLICY).to_dict() | {"failures": ["slow"]}
    with pytest.raises(ValueError, match="failures: unknown code 'slow'"):
        Check.from_dict(stored)
