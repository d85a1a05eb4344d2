"""Percentiles from buckets (PromQL's histogram_quantile rules, hand-computed) and the tiling of
windows over minute, hour and day rollups."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from apps.slo import quantiles, windows

BUCKETS = {"100": 50, "250": 90, "500": 99, "+Inf": 100}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.10, 20.0),  # first bucket: starts at 0, 10 of its 50 → 100 x 10/50
        (0.50, 100.0),  # exactly the first bucket's count → its upper bound
        (0.95, 250 + 250 * 5 / 9),  # 5 of the 9 requests between 250 and 500
        (0.99, 500.0),
        (0.999, 500.0),  # in the +Inf bucket: the highest finite bound, never more
    ],
)
def test_quantile_interpolates_linearly_inside_the_bucket(q, expected):
    assert quantiles.quantile(q, BUCKETS) == pytest.approx(expected)


def test_quantile_edge_cases():
    assert quantiles.quantile(0.5, {"0": 5, "+Inf": 10}) == 0  # lowest bound ≤ 0 is returned
    assert quantiles.quantile(0.5, {"100": 0, "+Inf": 0}) is None  # no requests: unknown
    assert quantiles.quantile(0.5, {"+Inf": 10}) is None  # no finite bucket: unknown
    assert quantiles.quantile(0.5, {"100": 5, "200": 10}) is None  # no +Inf: not a histogram
    # an empty bucket in the middle: the rank lands on the next non-empty one
    assert quantiles.quantile(0.75, {"100": 5, "200": 5, "400": 10, "+Inf": 10}) == 300


def test_good_below_counts_requests_at_most_the_threshold():
    assert quantiles.good_below(250, BUCKETS) == 90  # on a bound: exact
    assert quantiles.good_below(175, BUCKETS) == pytest.approx(70)  # 50 + 40 x 75/150
    assert quantiles.good_below(50, BUCKETS) == pytest.approx(25)
    assert quantiles.good_below(1000, BUCKETS) == 99  # beyond the last finite bound: slow


def test_merge_and_canonical_keys():
    assert quantiles.bucket_key(100.0) == "100"
    assert quantiles.bucket_key(0.25) == "0.25"
    assert quantiles.bucket_key(float("inf")) == "+Inf"
    assert quantiles.merge([{"100": 1, "+Inf": 2}, {"100": 3, "+Inf": 5}]) == {
        "100": 4,
        "+Inf": 7,
    }


def _minutes(ranges):
    covered = []
    step = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
    for resolution, low, high in ranges:
        moment = low
        while moment < high:
            covered.append((moment, moment + step[resolution]))
            moment += step[resolution]
    return covered


def test_cover_tiles_any_window_exactly_with_few_rows():
    rng = random.Random(7)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for _ in range(300):
        start = base + timedelta(minutes=rng.randrange(0, 40 * 1440))
        end = start + timedelta(minutes=rng.randrange(1, 31 * 1440))
        ranges = windows.cover(start, end)
        pieces = sorted(_minutes(ranges))
        assert pieces[0][0] == start and pieces[-1][1] == end
        for (_, a_end), (b_start, _) in itertools.pairwise(pieces):
            assert a_end == b_start  # no gap, no overlap
        assert len(pieces) <= 2 * 59 + 2 * 23 + 31


def test_cover_of_thirty_and_seven_days_reads_the_same_minute_and_hour_rows():
    end = datetime(2026, 11, 23, 14, 37, tzinfo=UTC)
    long, short = (
        windows.cover(end - timedelta(days=30), end),
        windows.cover(end - timedelta(days=7), end),
    )

    def rows(ranges, resolution):
        return sum(1 for piece in _minutes([r for r in ranges if r[0] == resolution]))

    assert rows(long, "m") == rows(short, "m") == 23 + 37
    assert rows(long, "h") == rows(short, "h") == 9 + 14
    assert (rows(long, "d"), rows(short, "d")) == (29, 6)


def test_burn_rate_factors_follow_budget_share_times_window_over_alert_window():
    page, page_slow, ticket, ticket_slow = windows.conditions({}, 30)
    assert [c.factor for c in (page, page_slow, ticket, ticket_slow)] == [14.4, 6.0, 3.0, 1.0]
    assert [c.name for c in windows.conditions({}, 7)] == ["1h/5m", "6h/30m", "1d/2h", "3d/6h"]
    assert [c.factor for c in windows.conditions({}, 28)] == [13.44, 5.6, 2.8, 0.933333]


def test_invalid_alerting_documents_name_the_field():
    with pytest.raises(windows.AlertingError) as caught:
        windows.validate_alerting(
            {
                "page": {"conditions": [{"long": "5m", "short": "1h", "budget_percent": 2}]},
                "ticket": {"enabled": "yes"},
                "sms": {},
            }
        )
    assert caught.value.errors == {
        "alerting.sms": "Unknown key; use page and ticket.",
        "alerting.page.conditions[0].short": "Must be shorter than the long window.",
        "alerting.ticket.enabled": "Must be true or false.",
    }


def test_merging_histograms_with_different_bounds_stays_cumulative():
    merged = quantiles.merge([{"100": 50, "+Inf": 100}, {"250": 300, "+Inf": 300}])
    # the first has no 250 bound: everything over 100 ms is in +Inf, so it counts 50 there;
    # the second has no 100 bound: 300 x 100/250 = 120 are read at 100 ms
    assert merged == {"100": 170, "250": 350, "+Inf": 400}
    counts = [merged[k] for k in sorted(merged, key=quantiles.parse_bound)]
    assert counts == sorted(counts)
