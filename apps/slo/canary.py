"""Canary analysis rules: per-minute checks and the release verdict. Pure: no ORM, no clock.

Modelled on Flagger / Argo Rollouts canary analysis. Once a minute the caller sums each
version's figures across routes, calls `check_minute` and stores the `Check`; it then asks
`verdict` for a decision over all checks so far plus the cumulative totals since the release
started.

A check fails with one or more of these codes:

- ``no_data``: no canary figures, or zero canary requests (missing data counts as a failed
  check, as in Flagger). No other code is given then.
- ``p95``: canary p95 known and above ``max_p95_ms``.
- ``error_ratio``: canary errors / requests above ``max_error_ratio``.
- ``p95_vs_baseline``: both p95 known, baseline p95 > 0 and canary p95 > baseline p95 x
  ``max_p95_ratio``.
- ``errors_vs_baseline``: baseline has requests, canary ratio - baseline ratio >=
  ``min_error_ratio_delta`` and the one-sided pooled two-proportion z >= ``z_threshold``
  (zero pooled variance, i.e. pooled ratio 0 or 1, is never significant).

A missing baseline never fails a check by itself; the absolute thresholds still apply.

A family is *sustained* when at least ``sustain_minutes`` checks exist and each of the last
``sustain_minutes`` failed with its code; for ``p95`` and ``error_ratio`` a ``no_data`` check
counts as failing too. Checks are counted, not clock minutes: a minute the caller skipped is
simply not a check.

The verdict is the first rule that applies:

1. each of the last ``sustain_minutes`` checks is ``no_data`` -> rollback (a dark canary is a
   failed canary, whatever the traffic so far);
2. cumulative canary requests < ``min_requests`` -> continue (too little evidence, even if
   checks failed);
3. p95, error_ratio, p95_vs_baseline or errors_vs_baseline sustained, or cumulative canary
   availability (1 - errors / requests) < ``min_availability`` -> rollback, one reason each;
4. at least ``analysis_minutes`` checks and the latest one passed -> promote;
5. otherwise continue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

PROMOTE, CONTINUE, ROLLBACK = "promote", "continue", "rollback"
NO_DATA, P95, ERROR_RATIO = "no_data", "p95", "error_ratio"
P95_VS_BASELINE, ERRORS_VS_BASELINE = "p95_vs_baseline", "errors_vs_baseline"
FAILURE_CODES = (NO_DATA, P95, ERROR_RATIO, P95_VS_BASELINE, ERRORS_VS_BASELINE)
SUSTAINABLE = (P95, ERROR_RATIO, P95_VS_BASELINE, ERRORS_VS_BASELINE)
_NO_DATA_FAILS = frozenset({P95, ERROR_RATIO})  # families for which missing data counts as failing

_INT_FIELDS = frozenset({"sustain_minutes", "min_requests", "analysis_minutes"})
_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "max_p95_ms": (lambda v: v > 0, "> 0"),
    "max_error_ratio": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "min_availability": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "sustain_minutes": (lambda v: v >= 1, ">= 1"),
    "min_requests": (lambda v: v >= 1, ">= 1"),
    "analysis_minutes": (lambda v: v >= 1, ">= 1"),
    "max_p95_ratio": (lambda v: v >= 1, ">= 1"),
    "min_error_ratio_delta": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "z_threshold": (lambda v: v > 0, "> 0"),
}


@dataclass(frozen=True)
class CanaryPolicy:
    max_p95_ms: float = 800.0
    max_error_ratio: float = 0.005
    min_availability: float = 0.995
    sustain_minutes: int = 10
    min_requests: int = 200
    analysis_minutes: int = 30
    max_p95_ratio: float = 1.5
    min_error_ratio_delta: float = 0.001
    z_threshold: float = 2.326  # one-sided, p < 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            integral = f.name in _INT_FIELDS
            if isinstance(value, bool) or not isinstance(value, int if integral else int | float):
                kind = "an integer" if integral else "a number"
                raise ValueError(f"{f.name}: expected {kind}, got {value!r}")
            if not integral:
                value = float(value)
                object.__setattr__(self, f.name, value)
            check, rule = _RANGES[f.name]
            if not math.isfinite(value) or not check(value):
                raise ValueError(f"{f.name}: must be {rule}, got {value!r}")
        if self.sustain_minutes > self.analysis_minutes:
            raise ValueError("sustain_minutes: must not exceed analysis_minutes")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryPolicy:
        if not isinstance(data, Mapping):
            raise ValueError("policy: expected an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MinuteFigures:
    """One version's data for one minute, summed across routes."""

    requests: int
    errors: int
    p95_ms: float | None  # None when there were no latency buckets

    def __post_init__(self) -> None:
        if self.requests < 0 or not 0 <= self.errors <= self.requests:
            raise ValueError(f"figures: need 0 <= errors <= requests, got {self}")

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MinuteFigures:
        p95 = d.get("p95_ms")
        return cls(int(d["requests"]), int(d["errors"]), None if p95 is None else float(p95))


@dataclass(frozen=True)
class Check:
    minute: datetime
    passed: bool
    failures: tuple[str, ...]
    canary: MinuteFigures | None
    baseline: MinuteFigures | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "minute": self.minute.isoformat(),
            "passed": self.passed,
            "failures": list(self.failures),
            "canary": self.canary.to_dict() if self.canary else None,
            "baseline": self.baseline.to_dict() if self.baseline else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        failures = tuple(d["failures"])
        if unknown := [code for code in failures if code not in FAILURE_CODES]:
            raise ValueError(f"failures: unknown code {unknown[0]!r}")
        canary, baseline = d.get("canary"), d.get("baseline")
        return cls(
            minute=datetime.fromisoformat(d["minute"]),
            passed=bool(d["passed"]),
            failures=failures,
            canary=MinuteFigures.from_dict(canary) if canary is not None else None,
            baseline=MinuteFigures.from_dict(baseline) if baseline is not None else None,
        )


@dataclass(frozen=True)
class Totals:
    """One version's cumulative figures since the release started."""

    requests: int
    errors: int

    def __post_init__(self) -> None:
        if self.requests < 0 or not 0 <= self.errors <= self.requests:
            raise ValueError(f"totals: need 0 <= errors <= requests, got {self}")

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def availability(self) -> float | None:
        return None if self.error_ratio is None else 1 - self.error_ratio


@dataclass(frozen=True)
class Verdict:
    decision: str  # PROMOTE | CONTINUE | ROLLBACK
    reasons: tuple[str, ...]
    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "reasons": list(self.reasons), "figures": self.figures}


def two_proportion_z(errors_a: int, requests_a: int, errors_b: int, requests_b: int) -> float:
    """Pooled two-proportion z for "a's error ratio is above b's" (one-sided: positive when a
    is worse). 0.0 when either side has no requests or the pooled variance is zero."""
    if requests_a <= 0 or requests_b <= 0:
        return 0.0
    pooled = (errors_a + errors_b) / (requests_a + requests_b)
    variance = pooled * (1 - pooled) * (1 / requests_a + 1 / requests_b)
    if variance <= 0:
        return 0.0
    return (errors_a / requests_a - errors_b / requests_b) / math.sqrt(variance)


def _z(check: Check) -> float:
    assert check.canary is not None and check.baseline is not None
    c, b = check.canary, check.baseline
    return two_proportion_z(c.errors, c.requests, b.errors, b.requests)


def check_minute(
    minute: datetime,
    canary: MinuteFigures | None,
    baseline: MinuteFigures | None,
    policy: CanaryPolicy,
) -> Check:
    """One minute's check of the canary against the policy and, where known, the baseline."""
    failures: list[str] = []
    if canary is None or canary.requests == 0:
        failures.append(NO_DATA)
    else:
        ratio = canary.errors / canary.requests
        if canary.p95_ms is not None and canary.p95_ms > policy.max_p95_ms:
            failures.append(P95)
        if ratio > policy.max_error_ratio:
            failures.append(ERROR_RATIO)
        if baseline is not None:
            if (
                canary.p95_ms is not None
                and baseline.p95_ms is not None
                and baseline.p95_ms > 0
                and canary.p95_ms > baseline.p95_ms * policy.max_p95_ratio
            ):
                failures.append(P95_VS_BASELINE)
            if (
                baseline.requests > 0
                and ratio - baseline.errors / baseline.requests >= policy.min_error_ratio_delta
                and two_proportion_z(
                    canary.errors, canary.requests, baseline.errors, baseline.requests
                )
                >= policy.z_threshold
            ):
                failures.append(ERRORS_VS_BASELINE)
    return Check(minute, not failures, tuple(failures), canary, baseline)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def _pct(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.2f}%"


def _failed_checks(count: int) -> str:
    return f"{count} failed check{'' if count == 1 else 's'}"


def _fails_with(check: Check, family: str) -> bool:
    return family in check.failures or (family in _NO_DATA_FAILS and NO_DATA in check.failures)


def _sustained_reason(family: str, window: Sequence[Check], policy: CanaryPolicy) -> str:
    latest = next(c for c in reversed(window) if family in c.failures)
    c, b = latest.canary, latest.baseline
    assert c is not None
    each = f"in each of the last {policy.sustain_minutes} checks"
    if family == P95:
        return f"Canary p95 above {_ms(policy.max_p95_ms)} {each} (latest {_ms(c.p95_ms)})."
    if family == ERROR_RATIO:
        limit, now = _pct(policy.max_error_ratio), _pct(c.error_ratio)
        return f"Canary error ratio above {limit} {each} (latest {now})."
    assert b is not None
    if family == P95_VS_BASELINE:
        return (
            f"Canary p95 more than {policy.max_p95_ratio:g} times the baseline {each}"
            f" (latest {_ms(c.p95_ms)} vs {_ms(b.p95_ms)})."
        )
    return (
        f"Canary error ratio significantly above the baseline {each}"
        f" (latest {_pct(c.error_ratio)} vs {_pct(b.error_ratio)}, z = {_z(latest):.2f})."
    )


def _side(totals: Totals, latest: MinuteFigures | None) -> dict[str, Any]:
    return {
        "requests": totals.requests,
        "errors": totals.errors,
        "error_ratio": totals.error_ratio,
        "availability": totals.availability,
        "latest_p95_ms": latest.p95_ms if latest else None,
    }


def verdict(
    checks: Sequence[Check],
    canary_totals: Totals,
    baseline_totals: Totals,
    policy: CanaryPolicy,
) -> Verdict:
    """The decision over all checks so far (any order; sorted by minute here)."""
    ordered = sorted(checks, key=lambda c: c.minute)
    n = policy.sustain_minutes
    window = ordered[-n:]
    full = len(ordered) >= n
    dark = full and all(NO_DATA in c.failures for c in window)
    sustained = [f for f in SUSTAINABLE if full and all(_fails_with(c, f) for c in window)]
    latest = ordered[-1] if ordered else None
    failed_in_window = sum(not c.passed for c in window)
    minutes = ordered[-1].minute - ordered[0].minute if ordered else None
    figures: dict[str, Any] = {
        "checks": len(ordered),
        "failed_checks_in_window": failed_in_window,
        "minutes_analysed": 0 if minutes is None else int(minutes.total_seconds() // 60) + 1,
        "sustained": [NO_DATA] if dark else sustained,
        "latest_failures": list(latest.failures) if latest else [],
        "canary": _side(canary_totals, latest.canary if latest else None),
        "baseline": _side(baseline_totals, latest.baseline if latest else None),
        "thresholds": policy.to_dict(),
    }

    def decide(decision: str, *reasons: str) -> Verdict:
        return Verdict(decision, reasons, figures)

    if dark:
        streak = next(
            (i for i, c in enumerate(reversed(ordered)) if NO_DATA not in c.failures), len(ordered)
        )
        return decide(ROLLBACK, f"No canary data for {streak} minutes (limit {n}).")
    if canary_totals.requests < policy.min_requests:
        return decide(
            CONTINUE,
            f"Too little traffic: {canary_totals.requests:,} canary requests,"
            f" {policy.min_requests:,} needed before a verdict.",
        )
    reasons = [_sustained_reason(f, window, policy) for f in sustained]
    availability = canary_totals.availability
    if availability is not None and availability < policy.min_availability:
        reasons.append(
            f"Canary availability {_pct(availability)} below {_pct(policy.min_availability)}"
            f" over {canary_totals.requests:,} requests."
        )
    if reasons:
        return decide(ROLLBACK, *reasons)
    assert availability is not None  # min_requests >= 1 and reached
    in_window = f"{_failed_checks(failed_in_window)} in the last {n} minutes"
    if latest is not None and len(ordered) >= policy.analysis_minutes and latest.passed:
        c, b = latest.canary, latest.baseline
        return decide(
            PROMOTE,
            f"Analysis complete after {len(ordered)} minutes: canary availability"
            f" {_pct(availability)} over {canary_totals.requests:,} requests (baseline"
            f" {_pct(baseline_totals.availability)}), latest p95 {_ms(c.p95_ms if c else None)}"
            f" (baseline {_ms(b.p95_ms if b else None)}), {in_window}.",
        )
    result: list[str] = []
    if len(ordered) < policy.analysis_minutes:
        result.append(
            f"Analysing: {len(ordered)} of {policy.analysis_minutes} minutes; {in_window}."
        )
    if latest is not None and not latest.passed:
        result.append(f"Latest check failed ({', '.join(latest.failures)}); waiting.")
    return decide(CONTINUE, *result)
