"""Latency from cumulative histogram buckets, by the rules of PromQL's `histogram_quantile`.

Buckets are `{upper bound in ms: cumulative count}` with a `+Inf` bucket holding every request.
A quantile is found by rank (q x total) and interpolated linearly inside the bucket that holds
that rank, assuming the bucket's observations are spread evenly. The edge cases are Prometheus's:

- the lowest bucket starts at 0 when its upper bound is positive (else its bound is returned);
- a rank that falls in the `+Inf` bucket returns the highest finite upper bound (nothing better
  is known), so a p99 can never exceed the largest finite bucket;
- no requests, or no finite bucket, gives no answer (None), not zero.

`good_below` answers the latency SLI's question, how many requests took at most `threshold` ms,
with the same linear assumption; a threshold on a bucket bound is exact, which is why the runbook
advises putting one there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

INF_KEY = "+Inf"


def bucket_key(bound: float) -> str:
    """The canonical spelling of a bucket bound: `100`, `0.25`, `+Inf`."""
    if math.isinf(bound):
        return INF_KEY
    if bound == int(bound):
        return str(int(bound))
    return repr(float(bound))


def parse_bound(key: str) -> float:
    if key in (INF_KEY, "Inf", "inf", "+inf"):
        return math.inf
    return float(key)


def sorted_buckets(buckets: Mapping[str, float]) -> list[tuple[float, float]]:
    return sorted((parse_bound(k), float(v)) for k, v in buckets.items())


def merge(bucket_sets: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Sum histograms bound by bound (canonical keys). Histograms with different bounds are
    first read at every bound of the union (`good_below`), so the sum stays cumulative."""
    sets = [b for b in bucket_sets if b]
    if not sets:
        return {}
    layout = tuple(sets[0])
    if all(tuple(b) == layout for b in sets):  # one layout in one key order: column sums in C
        return dict(
            zip(layout, map(sum, zip(*(b.values() for b in sets), strict=True)), strict=True)
        )
    bounds = set(layout)
    if all(b.keys() == bounds for b in sets):
        merged = dict.fromkeys(layout, 0)
        for buckets in sets:
            for key, count in buckets.items():
                merged[key] += count
        return merged
    union = set().union(*sets)
    merged = {}
    for key in union:
        bound = parse_bound(key)
        merged[key] = sum(b.get(key) if key in b else _count_at(bound, b) for b in sets)
    return merged


def _count_at(bound: float, buckets: Mapping[str, float]) -> float:
    if math.isinf(bound):
        return max(buckets.values(), default=0)
    return good_below(bound, buckets)


def quantile(q: float, buckets: Mapping[str, float]) -> float | None:
    """The q-quantile (0 ≤ q ≤ 1) in ms, or None when it cannot be known."""
    points = sorted_buckets(buckets)
    if len(points) < 2 or not math.isinf(points[-1][0]):
        return None
    total = points[-1][1]
    if total <= 0:
        return None
    rank = q * total
    index = next(i for i, (_, count) in enumerate(points) if count >= rank or i == len(points) - 1)
    if index == len(points) - 1:
        return points[-2][0]
    upper, count = points[index]
    if index == 0:
        if upper <= 0:
            return upper
        lower, below = 0.0, 0.0
    else:
        lower, below = points[index - 1]
    in_bucket = count - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / in_bucket


def good_below(threshold_ms: float, buckets: Mapping[str, float]) -> float:
    """Requests that took at most `threshold_ms`, interpolated inside the bucket around it."""
    points = sorted_buckets(buckets)
    lower, below = 0.0, 0.0
    for upper, count in points:
        if math.isinf(upper):
            return below  # beyond the highest finite bound nothing is known: count as slow
        if threshold_ms <= upper:
            if upper == lower:
                return count
            share = max(0.0, (threshold_ms - lower) / (upper - lower))
            return below + (count - below) * share
        lower, below = upper, count
    return below
