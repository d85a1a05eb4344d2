"""Validation of an SLI batch: every row checked, every problem named by row and field.

Plain Python rather than a serializer: a 10,000-row batch must validate in tens of milliseconds.
A batch is rejected whole (400) if any row is wrong; nothing of it is stored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apps.slo.models import NAME_PATTERN
from apps.slo.quantiles import INF_KEY, bucket_key, parse_bound

MAX_ROWS = 10_000
MAX_BUCKETS = 64
MAX_COUNTERS = 50
MAX_ERROR_SAMPLES = 20
MAX_REPORTED_ERRORS = 50
FUTURE_TOLERANCE = timedelta(minutes=5)
_NAME = re.compile(NAME_PATTERN)
_COUNTER = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
_ROW_KEYS = frozenset(
    {
        "service",
        "route",
        "version",
        "minute",
        "requests",
        "errors",
        "buckets",
        "counters",
        "error_samples",
    }
)


class BatchTooLarge(Exception):
    pass


class BatchInvalid(Exception):
    """`errors` maps `rows[i].field` to a message; at most MAX_REPORTED_ERRORS are listed."""

    def __init__(self, errors: dict[str, str], total: int):
        self.errors = errors
        self.total = total
        super().__init__(f"{total} problem(s) in the batch")


@dataclass(slots=True)
class Row:
    service: str
    route: str
    version: str
    minute: datetime
    requests: int
    errors: int
    buckets: dict[str, int] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    error_samples: list[dict] = field(default_factory=list)


def _count(value, name: str, problems: list[tuple[str, str]]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            problems.append((name, "A whole number is required."))
            return None
    if value < 0:
        problems.append((name, f"Must not be negative (got {value})."))
        return None
    return value


def _minute(value, now: datetime, max_age: timedelta, problems: list) -> datetime | None:
    if not isinstance(value, str):
        problems.append(("minute", "An ISO 8601 time with a UTC offset is required."))
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        problems.append(("minute", f"{value[:40]!r} is not an ISO 8601 time."))
        return None
    if moment.tzinfo is None:
        problems.append(("minute", "Give a UTC offset (e.g. 2026-11-22T10:05:00Z)."))
        return None
    if moment.second or moment.microsecond:
        problems.append(("minute", f"{value} is not aligned to a minute (seconds must be 0)."))
        return None
    moment = moment.astimezone(UTC)
    if moment > now + FUTURE_TOLERANCE:
        problems.append(("minute", f"{value} is in the future."))
        return None
    if moment < now - max_age:
        problems.append(("minute", f"{value} is older than {max_age.days} days (raw retention)."))
        return None
    return moment


_LAYOUTS: dict[tuple, tuple[list[int], list[str]]] = {}
_MAX_LAYOUTS = 1000


def _layout(keys: tuple) -> tuple[list[int], list[str]] | None:
    """For a histogram's keys in their given order: the order sorting them by bound, and their
    canonical spellings; None if a key is not a valid bound (the slow path says why)."""
    found = _LAYOUTS.get(keys)
    if found is not None:
        return found
    try:
        bounds = [parse_bound(str(key)) for key in keys]
    except ValueError:
        return None
    if any(math.isnan(b) or b < 0 for b in bounds):
        return None
    order = sorted(range(len(keys)), key=bounds.__getitem__)
    canonical = [bucket_key(bounds[i]) for i in order]
    if len(set(canonical)) != len(canonical):
        return None
    if len(_LAYOUTS) < _MAX_LAYOUTS:
        _LAYOUTS[keys] = (order, canonical)
    return order, canonical


def _buckets_fast(value: dict, requests: int | None) -> dict[str, int] | None:
    """The common case (known layout, whole counts, cumulative, consistent): else None."""
    if requests is None or len(value) > MAX_BUCKETS:
        return None
    layout = _layout(tuple(value))
    if layout is None:
        return None
    order, canonical = layout
    counts = list(value.values())
    ordered = [counts[i] for i in order]
    previous = 0
    for count in ordered:
        if type(count) is not int or count < previous:
            return None
        previous = count
    buckets = dict(zip(canonical, ordered, strict=True))
    inf = buckets.get(INF_KEY)
    if (inf is not None and inf != requests) or previous > requests:
        return None
    buckets[INF_KEY] = requests
    return buckets


def _buckets(value, requests: int | None, problems: list) -> dict[str, int]:
    if isinstance(value, dict):
        fast = _buckets_fast(value, requests)
        if fast is not None:
            return fast
    if not isinstance(value, dict):
        problems.append(
            ("buckets", 'An object of upper bound (ms) to cumulative count: {"100": 9}.')
        )
        return {}
    if len(value) > MAX_BUCKETS:
        problems.append(("buckets", f"At most {MAX_BUCKETS} buckets."))
        return {}
    parsed: list[tuple[float, int, str]] = []
    for key, count in value.items():
        try:
            bound = parse_bound(str(key))
        except ValueError:
            problems.append((f"buckets.{key}", "The bound must be a number of ms or +Inf."))
            return {}
        if math.isnan(bound) or bound < 0:
            problems.append((f"buckets.{key}", "The bound must be a non-negative number."))
            return {}
        number = _count(count, f"buckets.{key}", problems)
        if number is None:
            return {}
        parsed.append((bound, number, str(key)))
    parsed.sort()
    previous = 0
    for _bound, number, key in parsed:
        if number < previous:
            problems.append(
                (
                    f"buckets.{key}",
                    f"Buckets are cumulative: {number} is below the {previous} of a lower bound.",
                )
            )
            return {}
        previous = number
    buckets = {bucket_key(bound): number for bound, number, _ in parsed}
    if requests is not None:
        if INF_KEY in buckets and buckets[INF_KEY] != requests:
            problems.append(
                (f"buckets.{INF_KEY}", f"Must equal requests ({requests}), got {buckets[INF_KEY]}.")
            )
            return {}
        if previous > requests:
            problems.append(("buckets", f"Counts exceed requests ({requests})."))
            return {}
        buckets[INF_KEY] = requests
    return buckets


def _counters(value, problems: list) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > MAX_COUNTERS:
        problems.append(("counters", f"An object of at most {MAX_COUNTERS} named numbers."))
        return {}
    counters = {}
    for name, number in value.items():
        if not isinstance(name, str) or not _COUNTER.match(name):
            problems.append((f"counters.{name}", "Names: lowercase letters, digits, '_', '.'."))
            continue
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
            or number < 0
        ):
            problems.append((f"counters.{name}", "A non-negative number is required."))
            continue
        counters[name] = number
    return counters


def _error_samples(value, problems: list) -> list[dict]:
    if not isinstance(value, list) or len(value) > MAX_ERROR_SAMPLES:
        problems.append(("error_samples", f"A list of at most {MAX_ERROR_SAMPLES} samples."))
        return []
    samples = []
    for index, sample in enumerate(value):
        path = f"error_samples[{index}]"
        if not isinstance(sample, dict):
            problems.append((path, "An object with fingerprint, message and count."))
            continue
        fingerprint, message = sample.get("fingerprint"), sample.get("message", "")
        if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= 128:
            problems.append((f"{path}.fingerprint", "A string of 1 to 128 characters."))
            continue
        if not isinstance(message, str):
            problems.append((f"{path}.message", "A string."))
            continue
        count = _count(sample.get("count", 1), f"{path}.count", problems)
        if count is None:
            continue
        samples.append({"fingerprint": fingerprint, "message": message[:1000], "count": count})
    return samples


def validate_batch(document, *, now: datetime, max_age: timedelta) -> list[Row]:
    """The rows of a batch, or BatchInvalid / BatchTooLarge naming what is wrong."""
    rows_in = document.get("rows") if isinstance(document, dict) else None
    if not isinstance(rows_in, list) or not rows_in:
        raise BatchInvalid({"rows": "A non-empty list of per-minute rows is required."}, 1)
    if len(rows_in) > MAX_ROWS:
        raise BatchTooLarge()
    errors: dict[str, str] = {}
    total = 0
    rows: list[Row] = []
    seen: dict[tuple, int] = {}
    for index, raw in enumerate(rows_in):
        problems: list[tuple[str, str]] = []
        row = _row(raw, now, max_age, problems)
        if row is not None and not problems:
            key = (row.service, row.route, row.version, row.minute)
            if key in seen:
                problems.append(("minute", f"Duplicates rows[{seen[key]}] (same series, minute)."))
            seen[key] = index
        if problems:
            total += len(problems)
            for name, message in problems:
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors[f"rows[{index}].{name}"] = message
        elif row is not None:
            rows.append(row)
    if total:
        raise BatchInvalid(errors, total)
    return rows


def _row(raw, now: datetime, max_age: timedelta, problems: list) -> Row | None:
    if not isinstance(raw, dict):
        problems.append(("", "Each row is an object."))
        return None
    unknown = raw.keys() - _ROW_KEYS
    if unknown:
        problems.append((sorted(unknown)[0], "Unknown field."))
    service = raw.get("service")
    if not isinstance(service, str) or not _NAME.match(service):
        problems.append(("service", "A service name (lowercase letters, digits, '-') is required."))
    route = raw.get("route") or ""
    if not isinstance(route, str) or len(route) > 200:
        problems.append(("route", "A string of at most 200 characters."))
    version = raw.get("version") or ""
    if not isinstance(version, str) or len(version) > 100:
        problems.append(("version", "A string of at most 100 characters."))
    minute = _minute(raw.get("minute"), now, max_age, problems)
    requests = _count(raw.get("requests"), "requests", problems)
    errors = _count(raw.get("errors", 0), "errors", problems)
    if requests is not None and errors is not None and errors > requests:
        problems.append(("errors", f"More errors ({errors}) than requests ({requests})."))
    buckets = _buckets(raw["buckets"], requests, problems) if raw.get("buckets") else {}
    counters = _counters(raw["counters"], problems) if raw.get("counters") else {}
    samples = _error_samples(raw["error_samples"], problems) if raw.get("error_samples") else []
    if problems:
        return None
    return Row(service, route, version, minute, requests, errors, buckets, counters, samples)
