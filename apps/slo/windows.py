"""Windows over the SLI rollups, and the burn-rate alert conditions.

A window [start, end) is covered by whole UTC days where it can, whole hours at its ragged ends,
and minutes at the raggedest, so summing good and total events over 5 minutes or 30 days reads at
most 2x59 minute rows, 2x23 hour rows and 30 day rows per SLO (`cover`).

Burn rate is the error ratio divided by the error budget (1 - objective): 1 spends the budget
exactly over the SLO window. A condition pairs a long and a short window (the SRE workbook's
multiwindow, multi-burn-rate recipe): it holds when both burn faster than its factor, so a spike
that only the short window sees does not page, and the alert resolves as soon as the short
window recovers. Factors derive from the share of the budget a condition may spend in its long
window: factor = budget share x SLO window ÷ long window; for 30 days this gives the workbook's
14.4 (2 % in 1 h), 6 (5 % in 6 h), 3 (10 % in 1 day) and 1 (10 % in 3 days).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_DURATION = re.compile(r"^(\d{1,4})([mhd])$")
_UNITS = {"m": MINUTE, "h": HOUR, "d": DAY}
SEVERITIES = ("page", "ticket")
TIER_OF = {"page": 1, "ticket": 2}
DEFAULT_CONDITIONS = {
    "page": [
        {"long": "1h", "short": "5m", "budget_percent": 2},
        {"long": "6h", "short": "30m", "budget_percent": 5},
    ],
    "ticket": [
        {"long": "1d", "short": "2h", "budget_percent": 10},
        {"long": "3d", "short": "6h", "budget_percent": 10},
    ],
}
MAX_ALERT_WINDOW = timedelta(days=7)


class AlertingError(ValueError):
    """An invalid `alerting` document: `errors` maps a field path to a message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(str(text).strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 5m, 6h or 3d.")
    return int(match.group(1)) * _UNITS[match.group(2)]


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _floor(moment: datetime, step: timedelta) -> datetime:
    if step == DAY:
        return moment.replace(hour=0, minute=0)
    if step == HOUR:
        return moment.replace(minute=0)
    return moment


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


def cover(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """(resolution, from, to) ranges whose rollup rows exactly tile [start, end): minute-aligned
    UTC bounds in, half-open ranges of row starts out."""
    start, end = floor_minute(start), floor_minute(end)
    if end <= start:
        return []
    day_from, day_to = _ceil(start, DAY), _floor(end, DAY)
    if day_from >= day_to:
        hour_from, hour_to = _ceil(start, HOUR), _floor(end, HOUR)
        if hour_from >= hour_to:
            return [("m", start, end)]
        return _trim([("m", start, hour_from), ("h", hour_from, hour_to), ("m", hour_to, end)])
    hour_from, hour_to = _ceil(start, HOUR), _floor(end, HOUR)
    return _trim(
        [
            ("m", start, hour_from),
            ("h", hour_from, day_from),
            ("d", day_from, day_to),
            ("h", day_to, hour_to),
            ("m", hour_to, end),
        ]
    )


def _trim(ranges):
    return [r for r in ranges if r[1] < r[2]]


@dataclass(frozen=True)
class Condition:
    severity: str
    long: timedelta
    short: timedelta
    factor: float
    long_label: str
    short_label: str

    @property
    def name(self) -> str:
        return f"{self.long_label}/{self.short_label}"


def factor_for(budget_percent: float, window_days: int, long: timedelta) -> float:
    return round(budget_percent / 100 * (window_days * DAY) / long, 6)


def conditions(alerting: dict, window_days: int) -> list[Condition]:
    """The enabled conditions of an SLO: defaults, with each severity's `enabled` and
    `conditions` overridable; a condition gives `budget_percent` (factor derived) or `factor`."""
    validate_alerting(alerting)
    result = []
    for severity in SEVERITIES:
        section = alerting.get(severity) or {}
        if not section.get("enabled", True):
            continue
        for entry in section.get("conditions") or DEFAULT_CONDITIONS[severity]:
            long, short = parse_duration(entry["long"]), parse_duration(entry["short"])
            factor = entry.get("factor")
            if factor is None:
                factor = factor_for(float(entry["budget_percent"]), window_days, long)
            result.append(
                Condition(severity, long, short, float(factor), entry["long"], entry["short"])
            )
    return result


def validate_alerting(alerting: dict) -> None:
    errors: dict[str, str] = {}
    if not isinstance(alerting, dict):
        raise AlertingError({"alerting": "Must be an object."})
    for key in alerting:
        if key not in SEVERITIES:
            errors[f"alerting.{key}"] = "Unknown key; use page and ticket."
    for severity in SEVERITIES:
        section = alerting.get(severity)
        if section is None:
            continue
        path = f"alerting.{severity}"
        if not isinstance(section, dict):
            errors[path] = "Must be an object with enabled and/or conditions."
            continue
        for key in section:
            if key not in ("enabled", "conditions"):
                errors[f"{path}.{key}"] = "Unknown key; use enabled and conditions."
        if "enabled" in section and not isinstance(section["enabled"], bool):
            errors[f"{path}.enabled"] = "Must be true or false."
        entries = section.get("conditions")
        if entries is None:
            continue
        if not isinstance(entries, list) or not entries or len(entries) > 4:
            errors[f"{path}.conditions"] = "A list of 1 to 4 conditions."
            continue
        for index, entry in enumerate(entries):
            errors.update(_validate_condition(entry, f"{path}.conditions[{index}]"))
    if errors:
        raise AlertingError(errors)


def _validate_condition(entry, path: str) -> dict[str, str]:
    if not isinstance(entry, dict):
        return {path: "Must be an object with long, short and budget_percent or factor."}
    errors = {}
    spans = {}
    for name in ("long", "short"):
        try:
            spans[name] = parse_duration(entry.get(name, ""))
            if spans[name] > MAX_ALERT_WINDOW:
                errors[f"{path}.{name}"] = "At most 7 days."
        except ValueError as exc:
            errors[f"{path}.{name}"] = str(exc)
    if len(spans) == 2 and spans["short"] >= spans["long"]:
        errors[f"{path}.short"] = "Must be shorter than the long window."
    has_budget, has_factor = "budget_percent" in entry, "factor" in entry
    if has_budget == has_factor:
        errors[path] = "Give exactly one of budget_percent and factor."
    for name in ("budget_percent", "factor"):
        value = entry.get(name)
        if name in entry and (
            isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
        ):
            errors[f"{path}.{name}"] = "A positive number."
    unknown = set(entry) - {"long", "short", "budget_percent", "factor"}
    if unknown:
        errors[path] = f"Unknown keys: {', '.join(sorted(unknown))}."
    return errors


def alert_windows(conds: list[Condition]) -> set[timedelta]:
    return {c.long for c in conds} | {c.short for c in conds}
