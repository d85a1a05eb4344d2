"""OpenSLO v1 import and export (pure: no ORM, no I/O).

`parse(text)` reads a YAML stream (or one YAML list) of `openslo/v1` objects into an `ImportPlan`:
`ServiceSpec`s, `SLOSpec`s and `unsupported` problems (valid OpenSLO that is not imported, with
the reason). Malformed input raises `OpenSLOError` listing every error, each with its document
index, kind, name and path; nothing should then be imported. `export()` writes services and SLOs
as OpenSLO that `parse()` reads back unchanged.

SLIs are `ratioMetric`s (`counter: true`) over the `opsportal` metric source: the portal computes
SLIs from the per-minute aggregates services push to POST /api/v1/slo/events, and the source's
`spec` names one of them:

    {metric: requests}                                all requests
    {metric: errors}                                  failed requests (5xx)
    {metric: good_requests}                           requests - errors
    {metric: requests_faster_than, thresholdMs: 300}  requests at most 300 ms slow
    {metric: counter, counter: stp_success}           a named counter

    good: good_requests (or bad: errors), total: requests  -> availability
    good: requests_faster_than,           total: requests  -> latency (thresholdMs)
    good: counter A,                      total: counter B -> ratio (A / B)

For example, an SLO's spec (the SLI may also be a document of its own, named by `indicatorRef`):

    service: checkout
    indicator:
      metadata: {name: checkout-latency-sli}
      spec:
        ratioMetric:
          counter: true
          good: {metricSource: {type: opsportal, spec: {metric: requests_faster_than,
                                                        thresholdMs: 300}}}
          total: {metricSource: {type: opsportal, spec: {metric: requests}}}
    timeWindow: [{duration: 28d, isRolling: true}]   # 7d (1w), 28d (4w) or 30d, rolling
    budgetingMethod: Occurrences
    objectives: [{target: 0.99}]                     # or targetPercent: 99 (<= 4 decimals)

Not imported, and why: other metric sources (Prometheus, Datadog...) and DataSources, as the
portal queries no external system; thresholdMetric and raw ratios (a latency SLI is the ratio of
fast requests to all requests); Timeslices budgeting (budgets count occurrences); calendar-aligned
windows and windows other than 7, 28 or 30 rolling days; composite SLOs; objectives after the
first; AlertPolicy, AlertCondition and AlertNotificationTarget (the portal derives multiwindow
burn-rate alerts from each SLO and notifies through its own alert channels).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

API_VERSION = "openslo/v1"
MAX_BYTES = 1_000_000
MAX_DOCUMENTS = 500
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # apps.slo.models.NAME_PATTERN
SOURCE_TYPE = "opsportal"
WINDOW_DAYS = (7, 28, 30)
# Metric name -> the fields its spec takes besides `metric`.
METRICS: dict[str, set[str]] = {"requests": set(), "errors": set(), "good_requests": set()}
METRICS |= {"requests_faster_than": {"thresholdMs"}, "counter": {"counter"}}
_DURATION_RE = re.compile(r"([1-9][0-9]{0,5})([smhdwMQY])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ALERTING = (
    "not imported: the portal derives multiwindow burn-rate alerts from each SLO itself "
    "(configured per SLO) and notifies through its own alert channels"
)
_PUSH = (
    f"use metricSource type {SOURCE_TYPE} and push per-minute aggregates to POST /api/v1/slo/events"
)
_COMPOSITE = "composite SLOs are not supported"
_NAME_RULE = (
    "lowercase letters, digits and '-', 1 to 63 characters, starting and ending with a letter "
    "or digit"
)
_COMBINATIONS = (
    "supported opsportal ratios: good good_requests (or bad errors) / total requests "
    "(availability), good requests_faster_than / total requests (latency), good counter / "
    "total counter (ratio)"
)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    display_name: str = ""
    description: str = ""


@dataclass(frozen=True)
class SLOSpec:
    name: str
    service: str
    sli_type: str  # "availability" | "latency" | "ratio"
    objective_percent: float
    window_days: int
    display_name: str = ""
    description: str = ""
    latency_threshold_ms: float | None = None
    good_counter: str = ""
    total_counter: str = ""


@dataclass(frozen=True)
class Problem:
    document: int  # 0-based index of the YAML document (or of the item of a top-level list)
    kind: str
    name: str
    path: str  # e.g. "spec.budgetingMethod"; "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"document {self.document}"
        if self.kind:
            where += f" ({self.kind} {self.name!r})" if self.name else f" ({self.kind})"
        return f"{where}{', ' + self.path if self.path else ''}: {self.message}"


@dataclass
class ImportPlan:
    services: list[ServiceSpec]
    slos: list[SLOSpec]
    unsupported: list[Problem]  # features seen and NOT imported, to show to the user


class OpenSLOError(ValueError):
    """Malformed input: nothing should be imported. `errors` lists every problem found."""

    def __init__(self, errors: list[Problem]) -> None:
        self.errors = errors
        super().__init__("invalid OpenSLO input:\n" + "\n".join(f"  {p}" for p in errors))


_AVAILABILITY = (("good", ("good_requests",)), ("bad", ("errors",)))
# An SLI as the portal sees it: (sli_type, latency_threshold_ms, good_counter, total_counter).
_SLI = tuple[str, float | None, str, str]


@dataclass
class _Doc:
    """One document: what it holds, and the problems found in it."""

    index: int
    errors: list[Problem]
    unsupported: list[Problem]
    kind: str = ""
    name: str = ""
    metadata: Any = None
    spec: Any = None
    failed: bool = False  # an error: the input is rejected
    skipped: bool = False  # an unsupported feature: the SLO (or the SLOs using this SLI) stays out
    sli: _SLI | None = None
    used: bool = False

    def error(self, path: str, message: str) -> None:
        self.failed = True
        self.errors.append(Problem(self.index, self.kind, self.name, path, message))

    def note(self, path: str, message: str) -> None:
        self.unsupported.append(Problem(self.index, self.kind, self.name, path, message))

    def skip(self, path: str, message: str) -> None:
        self.skipped = True
        then = "the SLO is not imported" if self.kind == "SLO" else "SLOs using it are not imported"
        self.note(path, f"{message}; {then}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimal(value: float | Decimal) -> Decimal:
    """The decimal the float was written as (0.999, not 0.99899999999999999911)."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


def _show(value: Any) -> str:
    """A user's value, short (no repr of containers: YAML aliases can make them huge)."""
    if value is None or isinstance(value, str | int | float | bool):
        text = repr(value)
        return text if len(text) <= 80 else f"{text[:76]}...{text[-1]}"
    return f"a {type(value).__name__}"


def _text(mapping: Any, key: str, doc: _Doc, path: str, max_length: int | None = None) -> str:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if value is not None and not isinstance(value, str):
        doc.error(path, "must be a string")
    elif value is not None and max_length and len(value) > max_length:
        doc.error(path, f"must be at most {max_length} characters")
    return value if isinstance(value, str) else ""


def _name(value: Any, doc: _Doc, path: str) -> str:
    if isinstance(value, str) and NAME_RE.fullmatch(value):
        return value
    doc.error(path, f"{_show(value)} is not a valid name: {_NAME_RULE}")
    return ""


def _load(text: str) -> list[Any]:
    def fail(index: int, message: str) -> OpenSLOError:
        return OpenSLOError([Problem(index, "", "", "", message)])

    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise fail(0, f"input is larger than {MAX_BYTES} bytes")
    docs: list[Any] = []
    try:
        for loaded in yaml.safe_load_all(text):
            docs.append(loaded)
            if len(docs) > MAX_DOCUMENTS:
                break
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. a date 2024-13-01
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = str(getattr(exc, "problem", None) or exc)
        raise fail(len(docs), f"invalid YAML{where}: {detail:.200}") from None
    except RecursionError:
        raise fail(len(docs), "invalid YAML: nested too deeply") from None
    if len(docs) == 1 and isinstance(docs[0], list):
        docs = docs[0]
    if len(docs) > MAX_DOCUMENTS:
        raise fail(MAX_DOCUMENTS, f"more than {MAX_DOCUMENTS} documents")
    return docs


def _envelope(doc: _Doc, raw: Any) -> None:
    if not isinstance(raw, dict):
        return doc.error("", f"must be a mapping (an OpenSLO object), not {type(raw).__name__}")
    kind, metadata, version = raw.get("kind"), raw.get("metadata"), raw.get("apiVersion")
    doc.kind = kind if isinstance(kind, str) else ""
    doc.metadata, doc.spec = metadata, raw.get("spec")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    doc.name = name if isinstance(name, str) else ""
    if version is None:
        doc.error("apiVersion", f"is required: {API_VERSION}")
    elif version == "openslo/v1alpha":
        doc.error("apiVersion", f"openslo/v1alpha is not supported; convert to {API_VERSION}")
    elif version != API_VERSION:
        doc.error("apiVersion", f"{_show(version)} is not supported; expected {API_VERSION}")
    if not doc.kind:
        doc.error("kind", "is required (Service, SLO, SLI...)")
    if not isinstance(metadata, dict):
        doc.error("metadata", "is required: a mapping with at least a name")
    elif name is None:
        doc.error("metadata.name", "is required")
    elif kind in ("Service", "SLO", "SLI"):
        _name(name, doc, "metadata.name")
    elif not isinstance(name, str):
        doc.error("metadata.name", "must be a string")


def _source(part: Any, doc: _Doc, path: str) -> tuple[Any, ...] | None:
    """good, bad or total: ("requests",), ("requests_faster_than", ms) or ("counter", name)."""
    if not isinstance(part, dict):
        return doc.error(path, "must be a mapping with a metricSource")
    if "metricSource" not in part:
        return doc.skip(path, f"metrics without a metricSource are not supported; {_PUSH}")
    source, path = part["metricSource"], f"{path}.metricSource"
    if not isinstance(source, dict):
        return doc.error(path, "must be a mapping")
    kind = source.get("type")
    if kind is None and "metricSourceRef" in source:
        return doc.skip(f"{path}.metricSourceRef", f"DataSources are not supported; {_PUSH}")
    if not isinstance(kind, str):
        return doc.error(f"{path}.type", f"is required (type: {SOURCE_TYPE})")
    if kind.lower() != SOURCE_TYPE:
        why = f"metric source type {_show(kind)} is not supported: the portal queries no external"
        return doc.skip(f"{path}.type", f"{why} system; {_PUSH}")
    spec, path = source.get("spec"), f"{path}.spec"
    metric = spec.get("metric") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or not isinstance(metric, str) or metric not in METRICS:
        return doc.error(f"{path}.metric", f"is required: one of {', '.join(METRICS)}")
    for key in sorted(map(str, set(spec) - {"metric"} - METRICS[metric])):
        doc.error(f"{path}.{key}", f"unknown field for metric {metric}")
    if metric == "requests_faster_than":
        ms = spec.get("thresholdMs")
        if not _is_number(ms) or not 0 < ms < 1e9:
            return doc.error(f"{path}.thresholdMs", "is required: milliseconds, above 0")
        return (metric, float(ms))
    if metric == "counter":
        name = spec.get("counter")
        if not isinstance(name, str) or not 0 < len(name) <= 64 or name != name.strip():
            return doc.error(f"{path}.counter", "is required: a counter name, 1-64 characters")
        return (metric, name)
    return (metric,)


def _sli(spec: Any, doc: _Doc, path: str) -> _SLI | None:
    if not isinstance(spec, dict):
        return doc.error(path, "must be a mapping with a ratioMetric")
    if "thresholdMetric" in spec and "ratioMetric" in spec:
        return doc.error(path, "has both ratioMetric and thresholdMetric")
    if "thresholdMetric" in spec:
        why = "a latency SLI is the ratio of fast requests to all requests (ratioMetric)"
        return doc.skip(f"{path}.thresholdMetric", f"thresholdMetric is not supported: {why}")
    ratio, path = spec.get("ratioMetric"), f"{path}.ratioMetric"
    if not isinstance(ratio, dict):
        return doc.error(path, "is required: a mapping with good (or bad) and total")
    if "raw" in ratio or "rawType" in ratio:
        why = "precomputed ratios (raw) are not supported: the portal counts good and total events"
        return doc.skip(f"{path}.raw", why)
    if ratio.get("counter") is False:
        doc.skip(f"{path}.counter", "counter: false is not supported: the portal counts events")
    elif ratio.get("counter") is not True:
        doc.error(f"{path}.counter", "is required: true")
    if ("good" in ratio) == ("bad" in ratio):
        return doc.error(path, "needs exactly one of good or bad, and total")
    if "total" not in ratio:
        return doc.error(f"{path}.total", "is required")
    which = "good" if "good" in ratio else "bad"
    num = _source(ratio[which], doc, f"{path}.{which}")
    total = _source(ratio["total"], doc, f"{path}.total")
    if num is None or total is None:
        return None
    if total == ("requests",) and (which, num) in _AVAILABILITY:
        return ("availability", None, "", "")
    if total == ("requests",) and which == "good" and num[0] == "requests_faster_than":
        return ("latency", num[1], "", "")
    if which == "good" and num[0] == "counter" and total[0] == "counter":
        return ("ratio", None, num[1], total[1])
    return doc.error(path, f"{which} {num[0]} / total {total[0]} is not supported; {_COMBINATIONS}")


def _indicator(holder: dict[str, Any], path: str, doc: _Doc, slis: dict[str, _Doc]) -> _SLI | None:
    inline, ref = holder.get("indicator"), holder.get("indicatorRef")
    if inline is not None and ref is not None:
        return doc.error(path, "has both indicator and indicatorRef")
    if inline is not None:
        if not isinstance(inline, dict):
            return doc.error(f"{path}.indicator", "must be a mapping with metadata and spec")
        return _sli(inline.get("spec"), doc, f"{path}.indicator.spec")
    if not isinstance(ref, str) or ref not in slis:
        return doc.error(f"{path}.indicatorRef", f"no SLI named {_show(ref)} in this input")
    sli = slis[ref]
    sli.used = True
    if sli.sli is None and not sli.failed:
        why = f"SLI {ref!r} (document {sli.index}) is not supported (see its problems)"
        doc.skip(f"{path}.indicatorRef", why)
    return sli.sli


def _window(value: Any, doc: _Doc) -> int | None:
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        return doc.error("spec.timeWindow", "is required: a list of one {duration, isRolling}")
    item, path = value[0], "spec.timeWindow[0]"
    duration = item.get("duration")
    match = _DURATION_RE.fullmatch(duration) if isinstance(duration, str) else None
    if not match:
        return doc.error(f"{path}.duration", "must be a duration such as 28d or 4w")
    rolling = item.get("isRolling", "calendar" not in item)
    if not isinstance(rolling, bool):
        return doc.error(f"{path}.isRolling", "must be true or false")
    if not rolling or "calendar" in item:
        where = f"{path}.isRolling" if "isRolling" in item else f"{path}.calendar"
        why = "calendar-aligned windows are not supported; the portal's windows are rolling"
        return doc.skip(where, why)
    days, rest = divmod(int(match[1]) * _SECONDS.get(match[2], 0), 86400)
    if rest or days not in WINDOW_DAYS:
        why = f"window {duration} is not supported; use 7d (1w), 28d (4w) or 30d"
        return doc.skip(f"{path}.duration", why)
    return days


def _objective(objective: Any, doc: _Doc, path: str) -> float | None:
    if not isinstance(objective, dict):
        return doc.error(path, "must be a mapping with target or targetPercent")
    if ("target" in objective) == ("targetPercent" in objective):
        return doc.error(path, "needs exactly one of target (0-1) or targetPercent (0-100)")
    key = "target" if "target" in objective else "targetPercent"
    value, top = objective[key], 1 if key == "target" else 100
    if not _is_number(value) or not 0 < value < top:
        return doc.error(f"{path}.{key}", f"must be a number above 0 and below {top}")
    percent = _decimal(value).scaleb(2 if key == "target" else 0)
    if percent != percent.quantize(Decimal("0.0001")):
        return doc.error(f"{path}.{key}", "at most 4 decimals as a percentage (99.9999)")
    if "op" in objective or "value" in objective:
        doc.note(f"{path}.op", "op and value apply to threshold metrics only; ignored")
    return float(percent)


def _slo(doc: _Doc, slis: dict[str, _Doc]) -> SLOSpec | None:
    spec = doc.spec
    if not isinstance(spec, dict):
        return doc.error("spec", "is required: a mapping")
    service = _name(spec.get("service"), doc, "spec.service")
    description = _text(spec, "description", doc, "spec.description")
    display_name = _text(doc.metadata, "displayName", doc, "metadata.displayName", 200)
    for key in sorted(k for k in map(str, spec) if k.startswith("composite")):
        doc.skip(f"spec.{key}", _COMPOSITE)
    if "alertPolicies" in spec:
        doc.note("spec.alertPolicies", _ALERTING)
    window = _window(spec.get("timeWindow"), doc)
    method = spec.get("budgetingMethod")
    if method in ("Timeslices", "RatioTimeslices"):
        why = f"{method} budgeting is not supported: the portal budgets by occurrences"
        doc.skip("spec.budgetingMethod", why)
    elif method != "Occurrences":
        doc.error("spec.budgetingMethod", "must be Occurrences, Timeslices or RatioTimeslices")
    objectives, percent, holder, path = spec.get("objectives"), None, spec, "spec"
    if not isinstance(objectives, list) or not objectives:
        doc.error("spec.objectives", "is required: a list with at least one objective")
    else:
        for n, objective in enumerate(objectives):
            if isinstance(objective, dict) and "compositeWeight" in objective:
                doc.skip(f"spec.objectives[{n}].compositeWeight", _COMPOSITE)
            elif n:
                why = f"only one objective per SLO; objective {n + 1} ignored (the first is used)"
                doc.note(f"spec.objectives[{n}]", why)
        percent, first = _objective(objectives[0], doc, "spec.objectives[0]"), objectives[0]
        if isinstance(first, dict) and ("indicator" in first or "indicatorRef" in first):
            holder, path = first, "spec.objectives[0]"
    if "indicator" not in holder and "indicatorRef" not in holder:
        return doc.error("spec", "needs an indicator or an indicatorRef")
    sli = _indicator(holder, path, doc, slis)
    if doc.failed or doc.skipped or sli is None or window is None or percent is None:
        return None
    kind, threshold, good, total = sli
    return SLOSpec(
        doc.name, service, kind, percent, window, display_name, description, threshold, good, total
    )


def parse(text: str) -> ImportPlan:
    """Read OpenSLO v1 YAML; raise `OpenSLOError` (with every error) if it is malformed."""
    errors: list[Problem] = []
    plan = ImportPlan([], [], [])
    docs: list[_Doc] = []
    for index, raw in enumerate(_load(text)):
        if raw is not None:  # an empty document ("---" twice)
            docs.append(doc := _Doc(index, errors, plan.unsupported))
            _envelope(doc, raw)
    first: dict[tuple[str, str], int] = {}
    for doc in docs:
        if doc.kind in ("Service", "SLO", "SLI") and not doc.failed:
            seen = first.setdefault((doc.kind, doc.name), doc.index)
            if seen != doc.index:
                doc.error("metadata.name", f"duplicate {doc.kind} name (also document {seen})")
    slis = {doc.name: doc for doc in docs if doc.kind == "SLI" and not doc.failed}
    for doc in docs:
        if doc.kind == "SLI":
            sli = _sli(doc.spec, doc, "spec")
            doc.sli = None if doc.skipped else sli
        elif doc.kind == "Service":
            if doc.spec is not None and not isinstance(doc.spec, dict):
                doc.error("spec", "must be a mapping")
            display_name = _text(doc.metadata, "displayName", doc, "metadata.displayName", 200)
            description = _text(doc.spec, "description", doc, "spec.description")
            plan.services.append(ServiceSpec(doc.name, display_name, description))
        elif doc.kind in ("AlertPolicy", "AlertCondition", "AlertNotificationTarget"):
            doc.note("", _ALERTING)
        elif doc.kind == "DataSource":
            doc.note("", f"not imported: the portal queries no external data source; {_PUSH}")
        elif doc.kind and doc.kind != "SLO":
            doc.note("", f"kind {_show(doc.kind)} is not imported")
    plan.slos = [slo for doc in docs if doc.kind == "SLO" and (slo := _slo(doc, slis))]
    for doc in slis.values():
        if not doc.used:
            doc.note("", "not referenced by any SLO (by indicatorRef); not imported")
    if errors:
        raise OpenSLOError(sorted(errors, key=lambda p: p.document))
    plan.unsupported.sort(key=lambda p: p.document)
    return plan


def _source_doc(metric: str, **spec: Any) -> dict[str, Any]:
    return {"metricSource": {"type": SOURCE_TYPE, "spec": {"metric": metric, **spec}}}


def _object(kind: str, name: str, display_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    metadata = {"name": name, "displayName": display_name} if display_name else {"name": name}
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def export(services: Sequence[ServiceSpec], slos: Sequence[SLOSpec]) -> str:
    """OpenSLO v1 YAML: Service documents, then SLOs with inline opsportal indicators."""
    docs = []
    for service in services:
        about = {"description": service.description} if service.description else {}
        docs.append(_object("Service", service.name, service.display_name, about))
    for slo in slos:
        total = _source_doc("requests")
        if slo.sli_type == "availability":
            good = _source_doc("good_requests")
        elif slo.sli_type == "latency":
            if not slo.latency_threshold_ms:
                raise ValueError(f"SLO {slo.name!r}: a latency SLO needs latency_threshold_ms")
            threshold = float(slo.latency_threshold_ms)
            good = _source_doc("requests_faster_than", thresholdMs=threshold)
        elif slo.sli_type == "ratio":
            good = _source_doc("counter", counter=slo.good_counter)
            total = _source_doc("counter", counter=slo.total_counter)
        else:
            raise ValueError(f"SLO {slo.name!r}: unknown sli_type {slo.sli_type!r}")
        spec: dict[str, Any] = {"description": slo.description} if slo.description else {}
        ratio = {"counter": True, "good": good, "total": total}
        spec |= {
            "service": slo.service,
            "indicator": {
                "metadata": {"name": f"{slo.name[:59]}-sli"},
                "spec": {"ratioMetric": ratio},
            },
            "timeWindow": [{"duration": f"{slo.window_days}d", "isRolling": True}],
            "budgetingMethod": "Occurrences",
            "objectives": [{"target": float(_decimal(slo.objective_percent).scaleb(-2))}],
        }
        docs.append(_object("SLO", slo.name, slo.display_name, spec))
    return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True, explicit_start=True)
