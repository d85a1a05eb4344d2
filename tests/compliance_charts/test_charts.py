"""The compliance dashboard's server-side SVG charts: well-formed, CSP-clean and escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from django.utils.safestring import SafeString

from apps.compliance.charts import NO_DATA, bar_chart, line_chart, sparkline

NS = {"svg": "http://www.w3.org/2000/svg"}
START = date(2024, 3, 1)


def days(values: list[float | None], start: date = START) -> list[tuple[date, float | None]]:
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))  # noqa: S314 (our own output, not untrusted input)


def runs_of(values: list[float | None]) -> int:
    """Independent count of maximal runs of non-None values."""
    return sum(
        1 for i, v in enumerate(values) if v is not None and (i == 0 or values[i - 1] is None)
    )


def series_polylines(root: ET.Element, index: int) -> list[ET.Element]:
    groups = [
        g for g in root.iterfind(".//svg:g", NS) if f"series-{index}" in g.get("class", "").split()
    ]
    assert len(groups) == 1
    return groups[0].findall("svg:polyline", NS)


def y_tick_labels(root: ET.Element) -> list[str]:
    (axis,) = (g for g in root.iterfind(".//svg:g", NS) if "chart-axis-y" in g.get("class", ""))
    return [t.text or "" for t in axis.findall("svg:text", NS)]


def x_tick_labels(root: ET.Element) -> list[str]:
    (axis,) = (g for g in root.iterfind(".//svg:g", NS) if "chart-axis-x" in g.get("class", ""))
    return [t.text or "" for t in axis.findall("svg:text", NS)]


def all_ids(root: ET.Element) -> set[str]:
    return {e.get("id") for e in root.iter() if e.get("id")}


GAPPY = [1.0, 2.0, None, 3.0, None, None, 4.0, 5.0, 6.0, None, 7.0]
YEAR = [None if i % 40 in (5, 6) else 50 + (i % 17) for i in range(365)]


def sample_outputs() -> list[str]:
    return [
        line_chart([("a", days(GAPPY)), ("b", days(YEAR))], title="Pass rate", y_label="%"),
        line_chart([], title="Empty", y_label="x"),
        bar_chart([("apps/x.py", 3), ("b", 1)], title="Top files"),
        bar_chart([], title="No bars"),
        sparkline([1, None, 3, 2], title="Trend"),
        sparkline([None, None], title="Trend"),
    ]


@pytest.mark.parametrize("index", range(6))
def test_output_is_well_formed_svg_safe_string(index):
    svg = sample_outputs()[index]
    assert isinstance(svg, SafeString)
    root = parse(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("role") == "img"
    assert root.get("viewBox", "").startswith("0 0 ")
    # aria-labelledby points at this chart's own <title> and <desc>.
    labelled = root.get("aria-labelledby", "").split()
    assert [root.find(f".//*[@id='{i}']", NS).tag.split("}")[1] for i in labelled] == [
        "title",
        "desc",
    ]


@pytest.mark.parametrize("index", range(6))
def test_no_inline_style_or_event_handlers(index):
    svg = str(sample_outputs()[index])
    assert "style=" not in svg.lower()
    assert "<style" not in svg.lower()
    assert not re.search(r"\son[a-z]+\s*=", svg, re.IGNORECASE)
    assert "<script" not in svg.lower()


def test_one_polyline_per_run_of_non_gap_points():
    root = parse(line_chart([("a", days(GAPPY)), ("b", days(YEAR))], title="t", y_label="y"))
    assert len(series_polylines(root, 0)) == runs_of(GAPPY) == 4
    assert len(series_polylines(root, 1)) == runs_of(YEAR)
    # Every point is drawn exactly once (a lone point is doubled into a zero-length dot).
    pts = [p.get("points", "").split() for p in series_polylines(root, 1)]
    assert sum(len(p) for p in pts) == sum(v is not None for v in YEAR)
    assert all(re.fullmatch(r"-?\d+(\.\d)?,-?\d+(\.\d)?", pt) for p in pts for pt in p)


def test_single_point_run_is_still_a_segment():
    root = parse(line_chart([("a", days([None, 5.0, None]))], title="t", y_label="y"))
    (line,) = series_polylines(root, 0)
    a, b = line.get("points", "").split()
    assert a == b


@pytest.mark.parametrize(
    ("values", "kwargs", "top"),
    [
        ([10.0, 87.0, 40.0], {}, "100"),
        ([1.0, 7.0, 3.0], {}, "8"),
        ([0.2, 0.9], {}, "1"),
        ([1200.0, 2600.0], {}, "3,000"),
        ([0.9, 0.995], {"percent": True}, "100%"),
        ([0.1, 0.61], {"percent": True}, "80%"),
        ([0.01, 0.043], {"percent": True}, "6%"),
        ([0.5, 0.7], {"percent": True, "y_max": 1}, "100%"),
        ([1.0, 3.0], {"y_max": 50}, "50"),
        ([1.0, 3.0], {"y_max": 60}, "60"),
    ],
)
def test_y_axis_max(values, kwargs, top):
    root = parse(line_chart([("a", days(values))], title="t", y_label="y", **kwargs))
    labels = y_tick_labels(root)
    assert labels[-1] == top
    assert labels[0] == ("0%" if kwargs.get("percent") else "0")
    assert 4 <= len(labels) <= 5


def test_points_line_up_with_the_axes():
    values = [0.0, 25.0, 100.0, 50.0]
    root = parse(line_chart([("a", days(values))], title="t", y_label="y"))
    assert y_tick_labels(root)[-1] == "100"
    (line,) = series_polylines(root, 0)
    xy = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]

    def group(cls: str) -> ET.Element:
        (g,) = (g for g in root.iterfind(".//svg:g", NS) if g.get("class") == cls)
        return g

    grid = [float(ln.get("y1")) for ln in group("chart-grid").findall("svg:line", NS)]
    y_axis, x_axis, *ticks = group("chart-axis-lines").findall("svg:line", NS)
    assert xy[0][1] == pytest.approx(float(x_axis.get("y1")), abs=0.1)  # 0 on the x axis
    assert xy[1][1] == pytest.approx(grid[0], abs=0.1)  # 25 on the first grid line
    assert xy[2][1] == pytest.approx(grid[-1], abs=0.1)  # 100 on the top grid line
    assert xy[0][0] == pytest.approx(float(ticks[0].get("x1")), abs=0.1)  # first day
    assert xy[-1][0] == pytest.approx(float(ticks[-1].get("x1")), abs=0.1)  # last day
    assert xy[0][0] == pytest.approx(float(y_axis.get("x1")), abs=0.1)


def test_points_clamped_into_the_frame_when_y_max_is_below_the_data():
    root = parse(line_chart([("a", days([1.0, 500.0]))], title="t", y_label="y", y_max=10))
    (line,) = series_polylines(root, 0)
    ys = [float(p.split(",")[1]) for p in line.get("points", "").split()]
    assert min(ys) >= 24  # the plot area starts 24 px from the top


def test_title_and_names_are_escaped():
    evil = "<script>alert(1)</script>"
    svg = str(
        line_chart(
            [(evil, days([1.0, 2.0])), ("b&b", days([2.0, None]))],
            title=evil,
            y_label=f'"{evil}',
        )
    )
    assert "&lt;script&gt;" in svg
    assert "<script" not in svg.lower()
    assert "b&amp;b" in svg
    parse(svg)  # and it still parses
    bars = str(bar_chart([(evil, 1.0)], title=evil, css_class_for=lambda _: '"><script>'))
    assert "&lt;script&gt;" in bars
    assert "<script" not in bars.lower()
    spark = str(sparkline([1.0, 2.0], title=evil))
    assert "&lt;script&gt;" in spark
    assert "<script" not in spark.lower()


@pytest.mark.parametrize(
    "series",
    [[], [("a", days([None, None, None]))], [("a", []), ("b", days([None]))]],
    ids=["no-series", "all-none", "empty-and-none"],
)
def test_no_data(series):
    svg = line_chart(series, title="Pass rate", y_label="%")
    root = parse(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert NO_DATA in texts
    assert root.find(".//svg:polyline", NS) is None
    assert root.find(".//svg:rect", NS) is not None  # the frame


def test_data_renders_no_placeholder():
    assert NO_DATA not in str(line_chart([("a", days([1.0]))], title="t", y_label="y"))


def test_date_ticks_within_one_year_are_month_day():
    root = parse(line_chart([("a", days(YEAR[:200]))], title="t", y_label="y"))
    labels = x_tick_labels(root)
    assert 5 <= len(labels) <= 7
    assert all(re.fullmatch(r"\d{2}-\d{2}", label) for label in labels)
    assert labels[0] == "03-01"
    assert labels[-1] == (START + timedelta(days=199)).strftime("%m-%d")


def test_date_ticks_across_years_are_full_dates():
    root = parse(line_chart([("a", days(YEAR[:60], date(2024, 12, 1)))], title="t", y_label="y"))
    labels = x_tick_labels(root)
    assert 5 <= len(labels) <= 7
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", label) for label in labels)
    assert labels[0] == "2024-12-01"
    assert labels[-1] == "2025-01-29"
    assert labels == sorted(labels)


def test_desc_summarises_first_last_min_max():
    root = parse(line_chart([("Pass", days([3.0, None, 9.5, 1.25, 4.0]))], title="t", y_label="y"))
    desc = root.find("svg:desc", NS).text or ""
    assert "first 3, last 4, min 1.25, max 9.5" in desc


def test_percent_desc_shows_fractions_as_percentages():
    svg = line_chart([("rate", days([0.5, 0.875, 0.9]))], title="t", y_label="y", percent=True)
    desc = parse(svg).find("svg:desc", NS).text or ""
    assert "first 50%, last 90%, min 50%, max 90%" in desc


def test_legend_only_with_several_series():
    one = parse(line_chart([("a", days([1.0, 2.0]))], title="t", y_label="y"))
    two = parse(line_chart([("a", days([1.0])), ("b", days([2.0]))], title="t", y_label="y"))

    def legend(root: ET.Element) -> list[ET.Element]:
        return [g for g in root.iterfind(".//svg:g", NS) if g.get("class") == "chart-legend"]

    assert legend(one) == []
    (box,) = legend(two)
    assert [t.text for t in box.findall("svg:text", NS)] == ["a", "b"]


def test_bar_truncates_long_labels_with_full_label_in_title():
    long_name = "A rule whose human readable name is far too long for the label column"
    path = "apps/compliance/some/deeply/nested/package/violations.py"
    root = parse(bar_chart([(long_name, 12), (path, 7), ("short", 1)], title="Top"))
    bars = [g for g in root.iterfind("svg:g", NS) if "bar" in g.get("class", "").split()]
    assert len(bars) == 3
    labels = [g.find("svg:text[@class='bar-label']", NS).text or "" for g in bars]
    titles = [g.find("svg:title", NS).text or "" for g in bars]
    assert labels[0].endswith("\u2026")
    assert long_name.startswith(labels[0][:-1])
    assert len(labels[0]) < len(long_name)
    assert labels[1].startswith("\u2026")  # a path keeps its file name
    assert labels[1][1] == "/"  # ... cut at a directory boundary
    assert path.endswith(labels[1][1:])
    assert labels[1].endswith("/violations.py")
    assert labels[2] == "short"
    assert titles == [f"{long_name}: 12", f"{path}: 7", "short: 1"]


def test_bar_max_bars_and_css_class():
    bars = [(f"f{i}.py", float(20 - i)) for i in range(15)]
    root = parse(
        bar_chart(bars, title="Top", max_bars=4, css_class_for=lambda s: f"status-{s[:2]}")
    )
    groups = [g for g in root.iterfind("svg:g", NS) if "bar" in g.get("class", "").split()]
    assert [g.get("class") for g in groups] == [f"bar status-f{i}" for i in range(4)]
    widths = [float(g.find("svg:rect", NS).get("width")) for g in groups]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] > widths[-1] > 0
    assert "Top 4 of 15" in (root.find("svg:desc", NS).text or "")


def test_empty_bar_chart_says_no_data():
    assert NO_DATA in str(bar_chart([], title="Top"))


def test_sparkline_segments_and_scaling():
    root = parse(sparkline([1.0, None, 3.0, 2.0, None, None, 5.0], title="Trend"))
    lines = root.findall(".//svg:polyline", NS)
    assert len(lines) == 3
    ys = [float(p.split(",")[1]) for line in lines for p in line.get("points", "").split()]
    # Scaled to its own range: the max touches the top padding, the min the bottom.
    assert min(ys) == pytest.approx(2.5, abs=0.1)
    assert max(ys) == pytest.approx(28 - 2.5, abs=0.1)


def test_ids_unique_between_charts_with_the_same_title():
    first = parse(line_chart([("a", days([1.0]))], title="Pass rate", y_label="y"))
    second = parse(line_chart([("a", days([1.0]))], title="Pass rate", y_label="y"))
    spark = parse(sparkline([1.0], title="Pass rate"))
    assert all_ids(first) and all_ids(second)
    assert not all_ids(first) & all_ids(second)
    assert not all_ids(first) & all_ids(spark)
    assert all(i.startswith("chart-pass-rate-") for i in all_ids(first))
