"""Server-side SVG charts for the compliance dashboard.

The pages run under a strict Content-Security-Policy (no inline script, no inline style), so the
charts are plain SVG markup: no ``style`` attributes, no event handlers, only presentation
attributes (fill, stroke, font-size, ...) as fallbacks and CSS classes that
``static/compliance/dashboard.css`` styles (series colours ``series-0`` ... ``series-5``).

Every string that reaches the markup (titles, labels, series names, CSS classes) goes through
``django.utils.html.escape``; every number is formatted here. Text uses ``currentColor`` so the
charts follow the admin's light and dark themes.
"""

from __future__ import annotations

import itertools
import math
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify

__all__ = ["NO_DATA", "PALETTE", "bar_chart", "line_chart", "sparkline"]

SVG_NS = "http://www.w3.org/2000/svg"
NO_DATA = "No data for this period"
# Okabe-Ito, ordered for contrast on white; CSS may override per theme (class series-N).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
FONT_SIZE = 11
CHAR_W = 0.6 * FONT_SIZE  # rough average glyph width, for layout estimates only
ELLIPSIS = "\u2026"
_NICE_STEPS = (1.0, 2.0, 2.5, 5.0)
_TRAILING_ZERO = re.compile(r"\.0(?=[ ,]|$)")
_FONT_FAMILY = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"

# Ids must be unique on a page, also when a polled fragment from another worker process replaces
# part of it: a per-process random salt plus a counter.
_ID_SALT = secrets.token_hex(3)
_id_counter = itertools.count(1)

# --- helpers ------------------------------------------------------------------------------------


def _chart_id(title: str) -> str:
    slug = slugify(title)[:40].strip("-_") or "chart"
    return f"chart-{slug}-{_ID_SALT}{next(_id_counter):x}"


def _c(v: float) -> str:
    """A coordinate: one decimal, trailing ``.0`` dropped."""
    s = f"{v:.1f}"
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s == "-0" else s


def _num(v: float, max_decimals: int = 2) -> str:
    """A value for people: as few decimals as needed (up to ``max_decimals``), thousands commas."""
    for d in range(max_decimals + 1):
        if abs(round(v, d) - v) < 1e-9 * max(1.0, abs(v)):
            return f"{v:,.{d}f}"
    return f"{v:,.{max_decimals}f}"


def _fmt_value(v: float, percent: bool) -> str:
    """An axis or summary value; with ``percent`` a fraction shown as a percentage."""
    return f"{_num(v * 100, 1)}%" if percent else _num(v)


def _finite(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _nice_step(span: float, max_intervals: int = 4) -> float:
    """The smallest step from 1, 2, 2.5, 5 x 10^k that covers ``span`` in <= max_intervals."""
    if span <= 0:
        span = 1.0
    exp = math.floor(math.log10(span / max_intervals))
    for e in (exp, exp + 1):
        for m in _NICE_STEPS:
            step = m * 10.0**e
            if math.ceil(span / step - 1e-9) <= max_intervals:
                return step
    return 10.0 ** (exp + 2)  # pragma: no cover - unreachable: 10^(exp+1) always fits


def _is_nice(step: float) -> bool:
    mantissa = step / 10.0 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m) for m in (*_NICE_STEPS, 10.0))


def _even_step(span: float) -> float:
    """A step that ends exactly on the top of ``span``: nice if 3 or 4 intervals allow it."""
    for n in (4, 3):
        if _is_nice(span / n):
            return span / n
    return span / 4


def _truncate(label: str, max_chars: int) -> str:
    """Shorten with an ellipsis; paths (containing "/") keep their tail, the file name."""
    max_chars = max(max_chars, 2)
    if len(label) <= max_chars:
        return label
    if "/" in label:
        tail = label[-(max_chars - 1) :]
        if "/" in tail[:-1]:  # cut at a directory boundary: "…/package/module.py"
            tail = tail[tail.index("/") :]
        return ELLIPSIS + tail
    return label[: max_chars - 1].rstrip() + ELLIPSIS


def _open_svg(cid: str, css_class: str, width: int, height: int, title: str, desc: str) -> str:
    return (
        f'<svg xmlns="{SVG_NS}" class="{css_class}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" '
        f'font-family="{_FONT_FAMILY}" font-size="{FONT_SIZE}">'
        f'<title id="{cid}-title">{escape(title)}</title>'
        f'<desc id="{cid}-desc">{escape(desc)}</desc>'
    )


def _no_data(parts: list[str], x: float, y: float, w: float, h: float, text: str) -> None:
    parts.append(
        f'<rect class="chart-frame" x="{_c(x)}" y="{_c(y)}" width="{_c(w)}" height="{_c(h)}" '
        'fill="none" stroke="currentColor" stroke-opacity="0.3"/>'
        f'<text class="chart-empty" x="{_c(x + w / 2)}" y="{_c(y + h / 2)}" '
        f'text-anchor="middle" dominant-baseline="middle" fill="currentColor">'
        f"{escape(text)}</text>"
    )


def _runs(coords: Iterable[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Split into runs of consecutive non-gap points."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for p in coords:
        if p is None:
            if current:
                runs.append(current)
                current = []
        else:
            current.append(p)
    if current:
        runs.append(current)
    return runs


def _polylines(runs: list[list[tuple[float, float]]]) -> str:
    out = []
    for run in runs:
        # One %-format over the flattened run: about twice as fast as formatting point by point.
        flat = tuple(itertools.chain.from_iterable(run))
        pts = _TRAILING_ZERO.sub("", ("%.1f,%.1f " * len(run))[:-1] % flat)
        if len(run) == 1:  # a zero-length segment, drawn as a dot by the round line cap
            pts = f"{pts} {pts}"
        out.append(f'<polyline points="{pts}"/>')
    return "".join(out)


def _out(parts: list[str]) -> SafeString:
    # Every string interpolated above went through escape(); numbers are formatted here.
    return mark_safe("".join(parts))  # noqa: S308


# --- line chart ---------------------------------------------------------------------------------


def _y_scale(
    lo_data: float, hi_data: float, y_min: float, y_max: float | None, percent: bool
) -> tuple[float, float, list[float]]:
    """Axis bounds and ticks (4-5 of them): y_max as given, else a nicely rounded data max."""
    lo = float(y_min)
    if y_max is not None and y_max > lo:
        hi = float(y_max)
        step = _even_step(hi - lo)
    else:
        span = hi_data - lo
        if span <= 0:
            span = (1.0 - lo) if percent and lo < 1 else max(abs(lo) * 0.1, 1.0)
        step = _nice_step(span)
        hi = lo + math.ceil(span / step - 1e-9) * step
    ticks = []
    i = 0
    while (v := lo + i * step) <= hi + step * 1e-9:
        ticks.append(v)
        i += 1
    return lo, hi, ticks


def _date_ticks(d0: date, d1: date, max_ticks: int) -> list[date]:
    days = (d1 - d0).days
    if days <= 0:
        return [d0]
    intervals = max(1, min(max_ticks - 1, days))
    # Evenly spread over the period, first and last day included, rounded to whole days.
    return [d0 + timedelta(days=round(k * days / intervals)) for k in range(intervals + 1)]


def line_chart(
    series: list[tuple[str, list[tuple[date, float | None]]]],
    *,
    title: str,
    y_label: str,
    y_min: float = 0,
    y_max: float | None = None,
    width: int = 720,
    height: int = 220,
    percent: bool = False,
) -> SafeString:
    """Daily series over dates as an SVG line chart.

    ``series`` is ``[(name, [(day, value_or_None), ...]), ...]``; ``None`` (or a non-finite value)
    is a gap that breaks the line. With ``percent`` the values are fractions (0-1, e.g. a
    compliance rate) shown as percentages: 0.875 is labelled "87.5%". Without ``y_max`` the axis
    top is the data maximum rounded up to a nice step; values outside ``[y_min, y_max]`` are
    clamped to the frame. Series take the CSS classes ``series-0`` ... ``series-5`` (cycling),
    with the palette as fallback stroke colours.
    """
    cid = _chart_id(title)

    all_days: list[int] = []
    values: list[float] = []
    clean: list[tuple[str, list[tuple[int, float | None]]]] = []
    for name, points in series:
        pts = [
            (d.toordinal(), None if v is None else fv if math.isfinite(fv := float(v)) else None)
            for d, v in points
        ]
        clean.append((str(name), pts))
        all_days.extend([day for day, _ in pts])
        values.extend([v for _, v in pts if v is not None])

    if not values:
        parts = [_open_svg(cid, "chart chart-line chart-no-data", width, height, title, NO_DATA)]
        if y_label:
            parts.append(
                f'<text class="chart-y-label" x="4" y="14" fill="currentColor">'
                f"{escape(y_label)}</text>"
            )
        _no_data(parts, 4.5, 24.5, width - 9, height - 30, NO_DATA)
        parts.append("</svg>")
        return _out(parts)

    d0, d1 = date.fromordinal(min(all_days)), date.fromordinal(max(all_days))
    date_fmt = "%m-%d" if d0.year == d1.year else "%Y-%m-%d"
    v_min, v_max = min(values), max(values)
    lo, hi, y_ticks = _y_scale(v_min, v_max, y_min, y_max, percent)
    clamp = v_min < lo or v_max > hi
    y_labels = [_fmt_value(v, percent) for v in y_ticks]

    legend = len(clean) > 1
    x_label_w = len(d0.strftime(date_fmt)) * CHAR_W
    left = max(max(len(s) for s in y_labels) * CHAR_W + 10, x_label_w / 2 + 4, 24.0)
    right = max(x_label_w / 2 + 4, 12.0)
    top = 24.0
    bottom = 22.0 + (20.0 if legend else 0.0)
    plot_w = max(width - left - right, 10.0)
    plot_h = max(height - top - bottom, 10.0)
    x0, y0 = left, top + plot_h  # origin: bottom-left of the plot area

    ord0 = d0.toordinal()
    span_days = (d1 - d0).days
    x_scale = plot_w / span_days if span_days else 0.0
    x_mid = left + plot_w / 2
    y_scale = plot_h / (hi - lo)

    def y_of(v: float) -> float:
        return y0 - (min(max(v, lo), hi) - lo) * y_scale

    desc = _line_desc(clean, y_label, d0, d1, percent)
    parts = [_open_svg(cid, "chart chart-line", width, height, title, desc)]
    if y_label:
        parts.append(
            f'<text class="chart-y-label" x="4" y="14" fill="currentColor">{escape(y_label)}</text>'
        )

    # Grid lines and y tick labels.
    parts.append('<g class="chart-grid" stroke="currentColor" stroke-opacity="0.12">')
    for v in y_ticks[1:]:
        y = _c(y_of(v))
        parts.append(f'<line x1="{_c(x0)}" y1="{y}" x2="{_c(x0 + plot_w)}" y2="{y}"/>')
    parts.append("</g>")
    parts.append('<g class="chart-axis chart-axis-y" fill="currentColor" text-anchor="end">')
    for v, text in zip(y_ticks, y_labels, strict=True):
        parts.append(f'<text x="{_c(x0 - 6)}" y="{_c(y_of(v) + 4)}">{escape(text)}</text>')
    parts.append("</g>")

    # Axes, date ticks.
    max_x_ticks = max(2, min(6, int(plot_w // (x_label_w + 12)) + 1))
    x_ticks = _date_ticks(d0, d1, max_x_ticks)
    parts.append(
        '<g class="chart-axis-lines" stroke="currentColor" stroke-opacity="0.5">'
        f'<line x1="{_c(x0)}" y1="{_c(top)}" x2="{_c(x0)}" y2="{_c(y0)}"/>'
        f'<line x1="{_c(x0)}" y1="{_c(y0)}" x2="{_c(x0 + plot_w)}" y2="{_c(y0)}"/>'
    )
    tick_xs = [x0 + (d.toordinal() - ord0) * x_scale if span_days else x_mid for d in x_ticks]
    for x in tick_xs:
        parts.append(f'<line x1="{_c(x)}" y1="{_c(y0)}" x2="{_c(x)}" y2="{_c(y0 + 4)}"/>')
    parts.append("</g>")
    parts.append('<g class="chart-axis chart-axis-x" fill="currentColor" text-anchor="middle">')
    for d, x in zip(x_ticks, tick_xs, strict=True):
        parts.append(f'<text x="{_c(x)}" y="{_c(y0 + 16)}">{escape(d.strftime(date_fmt))}</text>')
    parts.append("</g>")

    # The series: one polyline per run of non-gap points.
    for i, (name, pts) in enumerate(clean):
        k = i % len(PALETTE)
        # y_of() inlined: this is the hot loop (a year of daily points per series).
        if span_days and not clamp:
            coords = [
                None if v is None else (x0 + (day - ord0) * x_scale, y0 - (v - lo) * y_scale)
                for day, v in pts
            ]
        else:
            coords = [
                None
                if v is None
                else (x0 + (day - ord0) * x_scale if span_days else x_mid, y_of(v))
                for day, v in pts
            ]
        parts.append(
            f'<g class="series series-{k}" fill="none" stroke="{PALETTE[k]}" stroke-width="2" '
            f'stroke-linejoin="round" stroke-linecap="round"><title>{escape(name)}</title>'
        )
        parts.append(_polylines(_runs(coords)))
        parts.append("</g>")

    if legend:
        parts.append('<g class="chart-legend">')
        lx, ly = x0, height - 6.0
        for i, (name, _) in enumerate(clean):
            k = i % len(PALETTE)
            label = _truncate(name, 32)
            parts.append(
                f'<line class="swatch series-{k}" x1="{_c(lx)}" y1="{_c(ly - 4)}" '
                f'x2="{_c(lx + 16)}" y2="{_c(ly - 4)}" stroke="{PALETTE[k]}" stroke-width="3"/>'
                f'<text x="{_c(lx + 20)}" y="{_c(ly)}" fill="currentColor">{escape(label)}</text>'
            )
            lx += 20 + len(label) * CHAR_W + 14
        parts.append("</g>")

    parts.append("</svg>")
    return _out(parts)


def _line_desc(
    clean: list[tuple[str, list[tuple[int, float | None]]]],
    y_label: str,
    d0: date,
    d1: date,
    percent: bool,
) -> str:
    def fmt(v: float) -> str:
        return _fmt_value(v, percent)

    head = f"{y_label}, " if y_label else ""
    out = [f"{head}{d0.isoformat()} to {d1.isoformat()}."]
    for name, pts in clean:
        vals = [v for _, v in pts if v is not None]
        if vals:
            out.append(
                f"{name}: first {fmt(vals[0])}, last {fmt(vals[-1])}, "
                f"min {fmt(min(vals))}, max {fmt(max(vals))}."
            )
        else:
            out.append(f"{name}: no data.")
    return " ".join(out)


# --- bar chart ----------------------------------------------------------------------------------


def bar_chart(
    bars: list[tuple[str, float]],
    *,
    title: str,
    width: int = 360,
    height: int = 180,
    max_bars: int = 10,
    css_class_for: Callable[[str], str] | None = None,
) -> SafeString:
    """Horizontal bars, label left and value right, in the order given (first ``max_bars``).

    Long labels are shortened with an ellipsis (paths keep their end, the file name); each bar
    has a ``<title>`` with the full label and value for hover. ``css_class_for(label)`` adds a
    CSS class to a bar's group (e.g. ``status-red``). Rows are at most 24 px high, so with few
    bars the chart is shorter than ``height``.
    """
    cid = _chart_id(title)
    shown = [(str(label), v) for label, value in bars if (v := _finite(value)) is not None]
    total = len(shown)
    shown = shown[: max(max_bars, 0)]

    if not shown:
        parts = [_open_svg(cid, "chart chart-bar chart-no-data", width, height, title, NO_DATA)]
        _no_data(parts, 0.5, 0.5, width - 1, height - 1, NO_DATA)
        parts.append("</svg>")
        return _out(parts)

    value_texts = [_num(v) for _, v in shown]
    pairs = list(zip((label for label, _ in shown), value_texts, strict=True))
    desc = ", ".join(f"{label}: {text}" for label, text in pairs)
    if total > len(shown):
        desc = f"Top {len(shown)} of {total}. {desc}"

    label_w = round(width * 0.42)
    value_w = max(len(t) for t in value_texts) * CHAR_W + 8
    bar_area = max(width - label_w - value_w - 4, 10.0)
    max_chars = int((label_w - 10) // CHAR_W)
    v_max = max(max(v for _, v in shown), 0.0)
    row_h = min(24.0, (height - 4) / len(shown))
    bar_h = row_h * 0.7

    used_h = min(height, math.ceil(4 + len(shown) * row_h))  # few bars: a shorter chart
    parts = [_open_svg(cid, "chart chart-bar", width, used_h, title, desc)]
    for i, ((label, v), text) in enumerate(zip(shown, value_texts, strict=True)):
        extra = f" {escape(css_class_for(label))}" if css_class_for else ""
        top = 2 + i * row_h
        mid = top + row_h / 2
        bar_w = bar_area * max(v, 0.0) / v_max if v_max > 0 else 0.0
        parts.append(
            f'<g class="bar{extra}"><title>{escape(label)}: {escape(text)}</title>'
            f'<text class="bar-label" x="{label_w - 6}" y="{_c(mid + 4)}" text-anchor="end" '
            f'fill="currentColor">{escape(_truncate(label, max_chars))}</text>'
            f'<rect x="{label_w}" y="{_c(mid - bar_h / 2)}" width="{_c(bar_w)}" '
            f'height="{_c(bar_h)}" fill="{PALETTE[0]}"/>'
            f'<text class="bar-value" x="{_c(label_w + bar_w + 4)}" y="{_c(mid + 4)}" '
            f'fill="currentColor">{escape(text)}</text></g>'
        )
    parts.append("</svg>")
    return _out(parts)


# --- sparkline ----------------------------------------------------------------------------------


def sparkline(
    points: Sequence[float | None], *, width: int = 120, height: int = 28, title: str
) -> SafeString:
    """A tiny line (evenly spaced points, ``None`` = gap) scaled to its own min and max."""
    cid = _chart_id(title)
    vals = [_finite(v) for v in points]
    present = [v for v in vals if v is not None]
    if not present:
        parts = [_open_svg(cid, "sparkline sparkline-no-data", width, height, title, NO_DATA)]
        parts.append(
            f'<text class="chart-empty" x="{_c(width / 2)}" y="{_c(height / 2)}" '
            'text-anchor="middle" dominant-baseline="middle" font-size="9" '
            'fill="currentColor">No data</text></svg>'
        )
        return _out(parts)

    lo, hi = min(present), max(present)
    pad = 2.5
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    n = len(vals)
    x_step = inner_w / (n - 1) if n > 1 else 0.0

    def y_of(v: float) -> float:
        return pad + inner_h / 2 if hi == lo else pad + (hi - v) / (hi - lo) * inner_h

    coords = [
        None if v is None else ((pad + i * x_step) if n > 1 else width / 2, y_of(v))
        for i, v in enumerate(vals)
    ]
    last = next(p for p in reversed(coords) if p is not None)
    desc = f"{len(present)} points; last {_num(present[-1])}, min {_num(lo)}, max {_num(hi)}."
    parts = [
        _open_svg(cid, "sparkline", width, height, title, desc),
        '<g class="sparkline-line" fill="none" stroke="currentColor" stroke-width="1.5" '
        'stroke-linejoin="round" stroke-linecap="round">',
        _polylines(_runs(coords)),
        "</g>",
        f'<circle class="sparkline-last" cx="{_c(last[0])}" cy="{_c(last[1])}" r="2" '
        'fill="currentColor"/></svg>',
    ]
    return _out(parts)
