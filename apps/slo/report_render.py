"""Rendering of the daily SLO report: HTML and plain-text email, Slack summary, admin page.

``display(report)`` adds every display string to the report dict (percentages, milliseconds,
thousands separators, status labels; ``None`` becomes "—"), so the email, Slack and the admin
template show the same figures and the template needs no formatting logic. Each renderer escapes
every string it outputs: ``django.utils.html.escape`` for HTML and SVG, ``slack_escape`` for Slack.

The admin page runs under a strict CSP, so ``charts()`` returns plain SVG built with the helpers
of ``apps.compliance.charts``: classes styled by ``static/slo/slo.css``, no style attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import SafeString

from apps.compliance.charts import (
    CHAR_W,
    NO_DATA,
    PALETTE,
    _c,
    _chart_id,
    _nice_step,
    _no_data,
    _num,
    _open_svg,
    _out,
)

NONE = "—"
TEMPLATE = "admin/slo/daily_report.html"
STATUSES = ("ok", "at_risk", "exhausted", "no_data")
STATUS_LABELS = {"ok": "OK", "at_risk": "At risk", "exhausted": "Exhausted", "no_data": "No data"}
SLACK_ICONS = {"exhausted": ":red_circle:", "at_risk": ":warning:", "no_data": ":grey_question:"}
MAX_MESSAGE = 200
SLACK_MAX_LINES = 15
X_TICK_HOURS = ("00:00", "06:00", "12:00", "18:00")

# --- formatting ---------------------------------------------------------------------------------


def _finite(v: object) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_percent(fraction: object, decimals: int = 3) -> str:
    """A fraction as a percentage: 0.99974 -> "99.974 %". A value strictly between 0 and 1 is
    never rounded to 0 % or 100 %: a day with a few errors shows "> 99.999 %", not "100.000 %"."""
    v = _finite(fraction)
    if v is None:
        return NONE
    text = f"{v * 100:.{decimals}f}"
    if 0 < v < 1 and float(text) in (0, 100):
        step = 10.0**-decimals
        return f"< {step:.{decimals}f} %" if v < 0.5 else f"> {100 - step:.{decimals}f} %"
    return f"{0:.{decimals}f} %" if float(text) == 0 else f"{text} %"  # no "-0.0 %"


def fmt_int(v: object) -> str:
    """A count with thousands separators: 1234567 -> "1,234,567"."""
    f = _finite(v)
    return NONE if f is None else f"{round(f):,}"


def fmt_number(v: object, max_decimals: int = 2) -> str:
    """As few decimals as needed, thousands separators: 14 -> "14", 4.6 -> "4.6"."""
    f = _finite(v)
    return NONE if f is None else _num(f, max_decimals)


def fmt_ms(v: object) -> str:
    """Milliseconds, at most one decimal: 180.5 -> "180.5 ms", 420.0 -> "420 ms"."""
    f = _finite(v)
    return NONE if f is None else f"{_num(f, 1)} ms"


def truncate(text: object, limit: int = MAX_MESSAGE) -> str:
    """Whitespace (stack traces) collapsed to single spaces, cut to ``limit`` with an ellipsis."""
    s = " ".join(str(text or "").split())
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def _ratio(num: object, den: object) -> float | None:
    n, d = _finite(num), _finite(den)
    return None if n is None or not d else n / d


def _safe_url(url: object) -> str:
    """The report link, only if it is a plain http(s) URL (never ``javascript:`` and the like)."""
    s = str(url or "").strip()
    return s if s.lower().startswith(("https://", "http://")) and s.isprintable() else ""


def _generated(value: object) -> str:
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value or NONE)
    if dt.utcoffset() == timedelta(0):
        return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return dt.isoformat(sep=" ", timespec="minutes")


# --- display ------------------------------------------------------------------------------------


def _display_slo(slo: dict) -> dict:
    status = str(slo.get("status") or "no_data")
    objective, window = _finite(slo.get("objective_percent")), _finite(slo.get("window_days"))
    return {
        **slo,
        "status": status,
        "title": str(slo.get("display_name") or slo.get("name") or ""),
        "status_label": STATUS_LABELS.get(status, status),
        "status_class": f"slo-status-{status if status in STATUSES else 'unknown'}",
        "objective_display": NONE if objective is None else f"{_num(objective, 3)} %",
        "window_display": NONE if window is None else f"{_num(window, 0)} d",
        "day_sli_display": fmt_percent(slo.get("day_sli"), 3),
        "budget_display": fmt_percent(slo.get("budget_remaining"), 1),
    }


def _display_service(s: dict) -> dict:
    d = {
        **s,
        "title": str(s.get("display_name") or s.get("name") or ""),
        "no_traffic": not _finite(s.get("requests")),
        "availability_display": fmt_percent(s.get("availability"), 3),
        "error_ratio_display": fmt_percent(s.get("error_ratio"), 3),
        "requests_display": fmt_int(s.get("requests")),
        "errors_display": fmt_int(s.get("errors")),
        "p50_display": fmt_ms(s.get("p50_ms")),
        "p95_display": fmt_ms(s.get("p95_ms")),
        "p99_display": fmt_ms(s.get("p99_ms")),
        "top_errors": [
            {
                **e,
                "message_display": truncate(e.get("message")),
                "count_display": fmt_int(e.get("count")),
            }
            for e in (s.get("top_errors") or [])[:5]
        ],
        "slos": [_display_slo(x) for x in s.get("slos") or []],
    }
    d["figures"] = [
        {"label": label, "value": d[f"{key}_display"]}
        for label, key in (
            ("Availability", "availability"),
            ("Requests", "requests"),
            ("Errors", "errors"),
            ("Error ratio", "error_ratio"),
            ("Latency p50", "p50"),
            ("Latency p95", "p95"),
            ("Latency p99", "p99"),
        )
    ]
    for r in s.get("ratios") or []:
        detail = f"{fmt_int(r.get('good'))} / {fmt_int(r.get('total'))}"
        d["figures"].append(
            {"label": r.get("name"), "value": f"{fmt_percent(r.get('value'), 2)} ({detail})"}
        )
    for v in s.get("volumes") or []:
        d["figures"].append({"label": v.get("name"), "value": fmt_number(v.get("value"))})
    for x in s.get("support") or []:
        label = f"{x.get('name')} ({x['aggregate']})" if x.get("aggregate") else x.get("name")
        d["figures"].append({"label": label, "value": fmt_number(x.get("value"))})
    return d


def display(report: dict) -> dict:
    """The report with display strings added: a superset of the dict, the raw keys stay. Per
    service ``title``, ``*_display``, ``figures`` ([{label, value}]: the figures table, ratios,
    volumes and support included), per SLO ``title``, ``status_label``, ``status_class``."""
    services = [_display_service(s) for s in report.get("services") or []]
    totals = report.get("totals") or {}
    statuses = [slo["status"] for s in services for slo in s["slos"]]
    counts = {k: int(totals.get(f"slos_{k}", statuses.count(k)) or 0) for k in STATUSES}
    summary = f"{int(totals.get('slos', len(statuses)) or 0)} SLOs: {counts['ok']} ok, "
    summary += f"{counts['at_risk']} at risk, {counts['exhausted']} exhausted"
    if counts["no_data"]:
        summary += f", {counts['no_data']} no data"
    hours = _finite(report.get("hours"))
    return {
        **report,
        "heading": f"Daily SLO report — {report.get('tenant', '')} — {report.get('date', '')}",
        "summary": summary,
        "counts": counts,
        "status_counts": [
            {"count": counts[k], "label": STATUS_LABELS[k], "status_class": f"slo-status-{k}"}
            for k in STATUSES
        ],
        "day_note": f"{hours:.0f}-hour day (daylight saving time change)"
        if hours is not None and hours != 24
        else "",
        "generated_display": _generated(report.get("generated_at")),
        "link": _safe_url(report.get("url")),
        "services": services,
    }


# --- email --------------------------------------------------------------------------------------

_MUTED = "color:#57606a;"
_TH = "text-align:left;padding:4px 12px 4px 0;border-bottom:1px solid #d0d7de;"
_TD = "padding:4px 12px 4px 0;border-bottom:1px solid #eaeef2;vertical-align:top;"
_NUM = "text-align:right;white-space:nowrap;"
_WRAP = "white-space:pre-wrap;word-break:break-all;"
_TABLE = '<table style="border-collapse:collapse;margin:0 0 12px;font-size:14px;">'
# (text, background, border) per status; the label is always written out too, never colour only.
_STATUS_STYLE = {
    "ok": ("#00563f", "#e3f4ee", "#009e73"),
    "at_risk": ("#6b4a00", "#fdf1d6", "#e69f00"),
    "exhausted": ("#8a3200", "#fbe6dc", "#d55e00"),
}


def _badge(slo: dict) -> str:
    fg, bg, border = _STATUS_STYLE.get(slo["status"], ("#3d444d", "#eef0f2", "#8c959f"))
    return (
        f'<span style="display:inline-block;padding:1px 8px;border:1px solid {border};'
        f'border-radius:10px;background:{bg};color:{fg};font-weight:700;font-size:12px;">'
        f"{escape(slo['status_label'])}</span>"
    )


def _row(*cells: str, num: tuple[int, ...] = ()) -> str:
    """A table row of already escaped cells; ``num`` are the right-aligned (numeric) columns."""
    tds = (f'<td style="{_TD}{_NUM if i in num else ""}">{c}</td>' for i, c in enumerate(cells))
    return f"<tr>{''.join(tds)}</tr>"


def _head(*labels: str) -> str:
    return "<tr>" + "".join(f'<th style="{_TH}">{escape(x)}</th>' for x in labels) + "</tr>"


def _email_service(s: dict) -> str:
    e = escape
    out = [
        f'<h2 style="font-size:18px;margin:24px 0 8px;">{e(s["title"])} '
        f'<span style="{_MUTED}font-size:13px;font-weight:400;">{e(s.get("name", ""))}</span></h2>'
    ]
    if s["no_traffic"]:
        out.append(f'<p style="{_MUTED}margin:0 0 8px;">No traffic on this day.</p>')
    rows = (_row(e(f["label"]), e(f["value"]), num=(1,)) for f in s["figures"])
    out += [_TABLE, *rows, "</table>"]
    if s["slos"]:
        out += [_TABLE, _head("SLO", "Objective", "Window", "Day SLI", "Budget left", "Status")]
        for x in s["slos"]:
            cells = [e(x[k]) for k in ("title", "objective_display", "window_display")]
            cells += [e(x["day_sli_display"]), e(x["budget_display"]), _badge(x)]
            out.append(_row(*cells, num=(1, 2, 3, 4)))
        out.append("</table>")
    if s["top_errors"]:
        out += ['<h3 style="font-size:15px;margin:12px 0 4px;">Top errors</h3>', _TABLE]
        out.append(_head("Count", "Message"))
        for x in s["top_errors"]:
            message = f'<code style="{_WRAP}">{e(x["message_display"])}</code>'
            out.append(_row(e(x["count_display"]), message, num=(0,)))
        out.append("</table>")
    return "".join(out)


def _meta(d: dict) -> str:
    parts = (d.get("tenant_name"), d.get("time_zone"), d["day_note"])
    return " · ".join([*(str(x) for x in parts if x), f"generated {d['generated_display']}"])


def email_html(report: dict) -> str:
    """A complete, self-contained HTML email: inline CSS, no scripts, images or other resources;
    the only link is the report's own URL."""
    d, e = display(report), escape
    link = ""
    if d["link"]:
        link = (
            f'<p style="margin:0 0 16px;"><a href="{e(d["link"])}" style="color:#0969da;">'
            "Open the report in opsportal</a></p>"
        )
    services = "".join(_email_service(s) for s in d["services"]) or "<p>No services.</p>"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(d['heading'])}</title></head>"
        '<body style="margin:0;padding:16px;background:#ffffff;color:#1f2328;'
        "font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;\">"
        '<div style="max-width:760px;margin:0 auto;">'
        f'<h1 style="font-size:22px;margin:0 0 4px;">{e(d["heading"])}</h1>'
        f'<p style="{_MUTED}margin:0 0 12px;font-size:13px;">{e(_meta(d))}</p>'
        f'<p style="margin:0 0 12px;font-size:15px;"><strong>{e(d["summary"])}</strong></p>'
        f"{link}{services}</div></body></html>"
    )


def email_text(report: dict) -> str:
    """The plain-text alternative of ``email_html``, with the same content."""
    d = display(report)
    lines = [d["heading"], _meta(d), "", d["summary"]]
    if d["link"]:
        lines.append(f"Report: {d['link']}")
    for s in d["services"]:
        lines += ["", f"== {s['title']} ({s.get('name', '')}) =="]
        if s["no_traffic"]:
            lines.append("  No traffic on this day.")
        width = max(len(str(f["label"])) for f in s["figures"])
        lines += [f"  {f['label']!s:<{width}}  {f['value']}" for f in s["figures"]]
        if s["slos"]:
            lines.append("  SLOs:")
        for x in s["slos"]:
            lines.append(
                f"    [{x['status_label'].upper()}] {x['title']}: objective "
                f"{x['objective_display']} over {x['window_display']}, "
                f"day SLI {x['day_sli_display']}, budget left {x['budget_display']}"
            )
        if s["top_errors"]:
            lines.append("  Top errors:")
        lines += [f"    {x['count_display']}x {x['message_display']}" for x in s["top_errors"]]
    return "\n".join(lines) + "\n"


# --- Slack --------------------------------------------------------------------------------------


def slack_escape(text: object) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_summary(report: dict, max_lines: int = SLACK_MAX_LINES) -> tuple[str, list[str]]:
    """A headline and at most ``max_lines`` mrkdwn lines: one per service, then one per SLO that
    is exhausted, at risk or without data (worst first), then a link to the report. When cut,
    the SLO lines keep at least half of the room and a line says how many were left out."""
    d = display(report)
    c = d["counts"]
    headline = f"Daily SLO report {d.get('tenant', '')} {d.get('date', '')}: {c['ok']} ok, "
    headline += f"{c['at_risk']} at risk, {c['exhausted']} exhausted"
    if c["no_data"]:
        headline += f", {c['no_data']} no data"
    svc_lines, problems = [], []
    for s in d["services"]:
        t = slack_escape(s["title"])
        figures = "no traffic"
        if not s["no_traffic"]:
            figures = f"availability {s['availability_display']}, p95 {s['p95_display']}, "
            figures += f"errors {s['errors_display']} ({s['error_ratio_display']})"
        svc_lines.append(f"*{t}*: {slack_escape(figures)}")
        for x in s["slos"]:
            if x["status"] not in SLACK_ICONS:
                continue
            status = x["status_label"].lower()
            if x["status"] != "no_data":
                status += f", budget left {x['budget_display']}"
            line = f"{SLACK_ICONS[x['status']]} *{slack_escape(x['title'])}* ({t}): "
            problems.append((list(SLACK_ICONS).index(x["status"]), line + slack_escape(status)))
    slo_lines = [line for _, line in sorted(problems, key=lambda p: p[0])]
    url = slack_escape(d["link"].replace("|", "%7C"))
    link = [f"<{url}|Open the full report>"] if url else []
    room = max_lines - len(link)
    if len(svc_lines) + len(slo_lines) > room:
        room -= 1
        n_svc = min(len(svc_lines), max(room - len(slo_lines), room // 2))
        n_slo = min(len(slo_lines), room - n_svc)
        left_out = len(svc_lines) + len(slo_lines) - n_svc - n_slo
        svc_lines, slo_lines = svc_lines[:n_svc], [*slo_lines[:n_slo], f"_… {left_out} more_"]
    return slack_escape(headline), [*svc_lines, *slo_lines, *link]


# --- charts -------------------------------------------------------------------------------------


def hourly_chart(
    points: list[tuple[str, float | None, str]],
    *,
    title: str,
    y_label: str,
    axis_fmt: Callable[[float], str] = _num,
    css_class: str = "",
    width: int = 360,
    height: int = 170,
) -> SafeString:
    """Columns from zero, one per local hour (23, 24 or 25): ``points`` is ``[(hour, value,
    hover_text)]``; a ``None`` value is an hour without data, an empty slot. Each column is a
    ``<g class="col">`` with a ``<title>`` and a transparent full-height hit area, so a column of
    height zero can be hovered too; ``css_class`` on the ``<svg>`` selects the colour."""
    cid = _chart_id(title)
    cls = f"chart chart-hourly {escape(css_class)}".strip()
    vals = [(str(hour), _finite(v), str(tip)) for hour, v, tip in points]
    present = [v for _, v, _ in vals if v is not None]
    if not present:
        parts = [_open_svg(cid, f"{cls} chart-no-data", width, height, title, NO_DATA)]
        _no_data(parts, 0.5, 0.5, width - 1, height - 1, NO_DATA)
        return _out([*parts, "</svg>"])

    span = max(max(present), 0.0)
    step = _nice_step(span) if span else 1.0  # all zero: an axis from 0 to 1, two ticks
    n_steps = max(math.ceil(span / step - 1e-9), 1)
    ticks = [(k * step, axis_fmt(k * step)) for k in range(n_steps + 1)]
    left = max(max(len(text) for _, text in ticks) * CHAR_W + 10, 24.0)
    top, plot_w, plot_h = 22.0, max(width - left - 6, 10.0), max(height - 42.0, 10.0)
    y0, slot, scale = top + plot_h, plot_w / len(vals), plot_h / (n_steps * step)
    bar_w, x1 = max(slot * 0.7, 1.0), _c(left + plot_w)
    peak = next(tip for _, v, tip in vals if v == max(present))
    desc = f"{y_label} per local hour, {len(vals)} hours; highest {peak}"
    if empty := len(vals) - len(present):
        desc += f"; {empty} hours without data"

    parts = [
        _open_svg(cid, cls, width, height, title, desc + "."),
        f'<text class="chart-y-label" x="4" y="13" fill="currentColor">{escape(y_label)}</text>'
        '<g class="chart-grid" stroke="currentColor" stroke-opacity="0.12">',
    ]
    for v, _ in ticks[1:]:
        parts.append(
            f'<line x1="{_c(left)}" y1="{_c(y0 - v * scale)}" x2="{x1}" y2="{_c(y0 - v * scale)}"/>'
        )
    parts.append('</g><g class="chart-axis chart-axis-y" fill="currentColor" text-anchor="end">')
    for v, text in ticks:
        parts.append(f'<text x="{_c(left - 6)}" y="{_c(y0 - v * scale + 4)}">{escape(text)}</text>')
    parts.append(
        '</g><g class="chart-axis-lines" stroke="currentColor" stroke-opacity="0.5">'
        f'<line x1="{_c(left)}" y1="{_c(top)}" x2="{_c(left)}" y2="{_c(y0)}"/>'
        f'<line x1="{_c(left)}" y1="{_c(y0)}" x2="{x1}" y2="{_c(y0)}"/></g>'
        f'<g class="cols" fill="{PALETTE[0]}">'
    )
    for i, (_, v, tip) in enumerate(vals):
        x = left + i * slot
        parts.append(
            f'<g class="col{" col-empty" if v is None else ""}"><title>{escape(tip)}</title>'
            f'<rect class="col-hit" x="{_c(x)}" y="{_c(top)}" width="{_c(slot)}" '
            f'height="{_c(plot_h)}" fill="transparent"/>'
        )
        if v is not None:
            h = max(v, 0.0) * scale
            parts.append(
                f'<rect class="col-bar" x="{_c(x + (slot - bar_w) / 2)}" y="{_c(y0 - h)}" '
                f'width="{_c(bar_w)}" height="{_c(h)}"/>'
            )
        parts.append("</g>")
    parts.append('</g><g class="chart-axis chart-axis-x" fill="currentColor" text-anchor="middle">')
    labelled = [i for i, (h, _, _) in enumerate(vals) if h in X_TICK_HOURS]
    for i in labelled or range(0, len(vals), 6):
        x = _c(left + (i + 0.5) * slot)
        parts.append(f'<text x="{x}" y="{_c(y0 + 15)}">{escape(vals[i][0][:5])}</text>')
    return _out([*parts, "</g></svg>"])


def _pct_axis(v: float) -> str:
    return f"{_num(v * 100, 4)}%"


def charts(report: dict) -> list[dict]:
    """Per service: {service, title, volume, latency, errors}, the last three hourly SVG charts
    (requests, p95 latency, error ratio) as SafeStrings."""
    out = []
    for s in report.get("services") or []:
        title = str(s.get("display_name") or s.get("name") or "")
        chart = {"service": s.get("name"), "title": title}
        hourly = s.get("hourly") or []
        volume, latency, errors = [], [], []
        for h in hourly:
            hour, requests, n_errors = str(h.get("hour", "")), h.get("requests"), h.get("errors")
            ratio = _ratio(n_errors, requests)
            volume.append((hour, requests, f"{hour}: {fmt_int(requests)} requests"))
            latency.append((hour, h.get("p95_ms"), f"{hour}: p95 {fmt_ms(h.get('p95_ms'))}"))
            tip = f"{hour}: no requests"
            if ratio is not None:
                tip = f"{hour}: {fmt_percent(ratio)} ({fmt_int(n_errors)} errors in "
                tip += f"{fmt_int(requests)} requests)"
            errors.append((hour, ratio, tip))
        for key, points, what, y_label in (
            ("volume", volume, "requests", "requests"),
            ("latency", latency, "p95 latency", "p95 ms"),
            ("errors", errors, "error ratio", "error ratio"),
        ):
            chart[key] = hourly_chart(
                points,
                title=f"{title}: {what} per hour",
                y_label=y_label,
                axis_fmt=_pct_axis if key == "errors" else _num,
                css_class=f"slo-chart-{key}",
            )
        out.append(chart)
    return out


# --- admin page ---------------------------------------------------------------------------------


def admin_context(report: dict, request=None) -> dict:
    """The template's context: the admin's own (with a request), ``report`` (that is
    ``display(report)``), ``charts`` (``charts(report)``) and ``title``."""
    context = {} if request is None else admin.site.each_context(request)
    shown = display(report)
    return {**context, "report": shown, "charts": charts(report), "title": shown["heading"]}


def render_admin(report: dict, request=None) -> str:
    return render_to_string(TEMPLATE, admin_context(report, request), request=request)
