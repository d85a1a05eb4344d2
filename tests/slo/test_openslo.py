"""OpenSLO v1 import/export (apps/slo/openslo.py): pure, no database."""

from __future__ import annotations

import copy
import itertools
from dataclasses import replace
from typing import Any

import pytest
import yaml

from apps.slo.openslo import (
    ImportPlan,
    OpenSLOError,
    Problem,
    ServiceSpec,
    SLOSpec,
    export,
    parse,
)


def src(metric: str, **spec: Any) -> dict[str, Any]:
    return {"metricSource": {"type": "opsportal", "spec": {"metric": metric, **spec}}}


AVAILABILITY = {
    "ratioMetric": {"counter": True, "good": src("good_requests"), "total": src("requests")}
}


def slo_doc(name: str = "checkout-availability", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "checkout",
        "indicator": {"metadata": {"name": f"{name}-sli"}, "spec": copy.deepcopy(AVAILABILITY)},
        "timeWindow": [{"duration": "28d", "isRolling": True}],
        "budgetingMethod": "Occurrences",
        "objectives": [{"target": 0.999}],
    }
    body.update(spec)
    body = {key: value for key, value in body.items() if value is not None}
    return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": name}, "spec": body}


def sli_doc(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": name}, "spec": spec}


def dump(*docs: Any) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def paths(problems: list[Problem]) -> list[tuple[int, str, str, str]]:
    return [(p.document, p.kind, p.name, p.path) for p in problems]


def errors_of(text: str) -> list[Problem]:
    with pytest.raises(OpenSLOError) as info:
        parse(text)
    return info.value.errors


def only_error(text: str) -> Problem:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    return errors[0]


def availability(name: str = "checkout-availability", **fields: Any) -> SLOSpec:
    values: dict[str, Any] = {"service": "checkout", "sli_type": "availability"}
    values |= {"objective_percent": 99.9, "window_days": 28} | fields
    return SLOSpec(name=name, **values)


# Round trip ---------------------------------------------------------------------------------

SERVICES = [
    ServiceSpec("checkout", "Checkout", "Takes the money.\nTwo lines: yes, 'quoted' & #hash"),
    ServiceSpec("payments-eu"),
    ServiceSpec("404", "Überweisungen — EU", "  leading spaces and a trailing newline\n"),
]
SLOS = [
    SLOSpec("checkout-availability", "checkout", "availability", 99.9, 28, "Checkout", "Errors."),
    SLOSpec("checkout-latency", "checkout", "latency", 99.0, 7, latency_threshold_ms=300.0),
    SLOSpec("search-p99", "search", "latency", 95.5, 30, latency_threshold_ms=0.25),
    SLOSpec("stp-rate", "payments-eu", "ratio", 97.125, 30, "", "", None, "ok", "stp.total:all"),
    SLOSpec("tiny", "payments-eu", "availability", 0.0001, 7),
    SLOSpec("nines", "payments-eu", "availability", 99.9999, 28),
    SLOSpec("yes", "null", "ratio", 50.0, 28, good_counter="true", total_counter="1e3"),
]


def test_round_trip_is_exact_for_every_sli_type_and_window() -> None:
    assert {s.sli_type for s in SLOS} == {"availability", "latency", "ratio"}
    assert {s.window_days for s in SLOS} == {7, 28, 30}
    assert parse(export(SERVICES, SLOS)) == ImportPlan(services=SERVICES, slos=SLOS, unsupported=[])


@pytest.mark.parametrize("window", [7, 28, 30])
@pytest.mark.parametrize("percent", [99.9, 99.95, 90.0, 12.3456, 99.99, 99.0001])
def test_round_trip_keeps_objectives_and_windows(window: int, percent: float) -> None:
    slo = availability(objective_percent=percent, window_days=window)
    assert parse(export([], [slo])).slos == [slo]


def test_export_writes_plain_openslo() -> None:
    slo = SLOSpec("checkout-latency", "checkout", "latency", 99.5, 30, "Fast checkout")
    text = export([ServiceSpec("checkout", "Checkout")], [replace(slo, latency_threshold_ms=300.0)])
    assert text == (
        "---\n"
        "apiVersion: openslo/v1\n"
        "kind: Service\n"
        "metadata:\n"
        "  name: checkout\n"
        "  displayName: Checkout\n"
        "spec: {}\n"
        "---\n"
        "apiVersion: openslo/v1\n"
        "kind: SLO\n"
        "metadata:\n"
        "  name: checkout-latency\n"
        "  displayName: Fast checkout\n"
        "spec:\n"
        "  service: checkout\n"
        "  indicator:\n"
        "    metadata:\n"
        "      name: checkout-latency-sli\n"
        "    spec:\n"
        "      ratioMetric:\n"
        "        counter: true\n"
        "        good:\n"
        "          metricSource:\n"
        "            type: opsportal\n"
        "            spec:\n"
        "              metric: requests_faster_than\n"
        "              thresholdMs: 300.0\n"
        "        total:\n"
        "          metricSource:\n"
        "            type: opsportal\n"
        "            spec:\n"
        "              metric: requests\n"
        "  timeWindow:\n"
        "  - duration: 30d\n"
        "    isRolling: true\n"
        "  budgetingMethod: Occurrences\n"
        "  objectives:\n"
        "  - target: 0.995\n"
    )


def test_export_of_nothing_parses_to_an_empty_plan() -> None:
    assert export([], []) == ""
    assert parse("") == ImportPlan([], [], [])
    assert parse("---\n# just a comment\n---\n") == ImportPlan([], [], [])


def test_export_keeps_the_indicator_name_a_valid_label() -> None:
    name = "a" * 63
    text = export([], [availability(name)])
    assert yaml.safe_load(text)["spec"]["indicator"]["metadata"]["name"] == "a" * 59 + "-sli"
    assert parse(text).slos == [availability(name)]


def test_export_rejects_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="SLO 'x': unknown sli_type 'freshness'"):
        export([], [SLOSpec("x", "checkout", "freshness", 99.0, 28)])
    with pytest.raises(ValueError, match="SLO 'x': a latency SLO needs latency_threshold_ms"):
        export([], [SLOSpec("x", "checkout", "latency", 99.0, 28)])


# A realistic file ---------------------------------------------------------------------------

REALISTIC = """\
# Checkout SLOs, maintained by the payments team.
apiVersion: openslo/v1
kind: Service
metadata:
  name: checkout
  displayName: Checkout
spec:
  description: The checkout API behind the web shop.
---
apiVersion: openslo/v1
kind: SLI
metadata:
  name: checkout-fast
  displayName: Checkout under 300 ms
spec:
  description: Requests answered within 300 ms.
  ratioMetric:
    counter: true
    good:
      metricSource:
        type: OpsPortal
        spec: {metric: requests_faster_than, thresholdMs: 300}
    total:
      metricSource:
        type: opsportal
        spec: {metric: requests}
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-latency
  displayName: Checkout latency
spec:
  description: 99% of checkout requests within 300 ms.
  service: checkout
  indicatorRef: checkout-fast
  timeWindow:
    - duration: 1w
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: Fast enough
      targetPercent: 99
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-availability
spec:
  service: checkout
  indicator:
    metadata:
      name: checkout-errors
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource: {type: opsportal, spec: {metric: errors}}
        total:
          metricSource: {type: opsportal, spec: {metric: requests}}
  timeWindow:
    - duration: 4w
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.9995
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: stp-rate
spec:
  service: payments
  indicator:
    metadata: {name: stp}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: opsportal, spec: {metric: counter, counter: stp_success}}}
        total: {metricSource: {type: opsportal, spec: {metric: counter, counter: stp_total}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.97}]
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata:
  name: checkout-fast-burn
spec:
  severity: page
  conditions:
    - conditionRef: fast-burn
  notificationTargets:
    - targetRef: pagerduty
"""


def test_a_realistic_file_imports_services_and_slos_and_reports_the_alert_policy() -> None:
    plan = parse(REALISTIC)
    assert plan.services == [
        ServiceSpec("checkout", "Checkout", "The checkout API behind the web shop.")
    ]
    assert plan.slos == [
        SLOSpec(
            "checkout-latency",
            "checkout",
            "latency",
            99.0,
            7,
            "Checkout latency",
            "99% of checkout requests within 300 ms.",
            latency_threshold_ms=300.0,
        ),
        SLOSpec("checkout-availability", "checkout", "availability", 99.95, 28),
        SLOSpec(
            "stp-rate",
            "payments",
            "ratio",
            97.0,
            30,
            good_counter="stp_success",
            total_counter="stp_total",
        ),
    ]
    assert paths(plan.unsupported) == [(5, "AlertPolicy", "checkout-fast-burn", "")]
    message = plan.unsupported[0].message
    assert "derives multiwindow burn-rate alerts" in message
    assert "its own alert channels" in message


def test_a_single_yaml_list_is_accepted_and_indexed_by_item() -> None:
    items = list(yaml.safe_load_all(REALISTIC))
    plan = parse(yaml.safe_dump(items, sort_keys=False))
    assert plan == parse(REALISTIC)
    assert plan.unsupported[0].document == 5


# Unsupported features -----------------------------------------------------------------------


def test_timeslices_budgeting_is_reported_and_the_slo_not_imported() -> None:
    plan = parse(
        dump(
            slo_doc("a", budgetingMethod="Timeslices"),
            slo_doc("b", budgetingMethod="RatioTimeslices"),
            slo_doc("c"),
        )
    )
    assert [s.name for s in plan.slos] == ["c"]
    assert paths(plan.unsupported) == [
        (0, "SLO", "a", "spec.budgetingMethod"),
        (1, "SLO", "b", "spec.budgetingMethod"),
    ]
    assert plan.unsupported[0].message == (
        "Timeslices budgeting is not supported: the portal budgets by occurrences; "
        "the SLO is not imported"
    )


def test_calendar_aligned_windows_are_reported_and_the_slo_not_imported() -> None:
    calendar = {"startTime": "2024-01-01 00:00:00", "timeZone": "Europe/Berlin"}
    plan = parse(
        dump(
            slo_doc("a", timeWindow=[{"duration": "1M", "isRolling": False, "calendar": calendar}]),
            slo_doc("b", timeWindow=[{"duration": "1w", "calendar": calendar}]),
            slo_doc("c", timeWindow=[{"duration": "30d", "isRolling": False}]),
        )
    )
    assert plan.slos == []
    assert paths(plan.unsupported) == [
        (0, "SLO", "a", "spec.timeWindow[0].isRolling"),
        (1, "SLO", "b", "spec.timeWindow[0].calendar"),
        (2, "SLO", "c", "spec.timeWindow[0].isRolling"),
    ]
    assert all("calendar-aligned windows are not supported" in p.message for p in plan.unsupported)


@pytest.mark.parametrize(
    ("duration", "days"),
    [("7d", 7), ("1w", 7), ("168h", 7), ("28d", 28), ("4w", 28), ("30d", 30), ("43200m", 30)],
)
def test_rolling_durations_map_to_portal_windows(duration: str, days: int) -> None:
    text = dump(slo_doc(timeWindow=[{"duration": duration, "isRolling": True}]))
    assert parse(text).slos == [availability(window_days=days)]


@pytest.mark.parametrize("duration", ["14d", "1d", "2w", "90d", "1Q", "1Y", "36h"])
def test_other_rolling_durations_are_reported(duration: str) -> None:
    plan = parse(dump(slo_doc(timeWindow=[{"duration": duration, "isRolling": True}])))
    assert plan.slos == []
    assert paths(plan.unsupported) == [
        (0, "SLO", "checkout-availability", "spec.timeWindow[0].duration")
    ]
    assert plan.unsupported[0].message == (
        f"window {duration} is not supported; use 7d (1w), 28d (4w) or 30d; the SLO is not imported"
    )


def test_only_the_first_objective_is_imported() -> None:
    objectives = [
        {"displayName": "good", "target": 0.99},
        {"displayName": "great", "target": 0.999},
        {"targetPercent": 99.99},
    ]
    plan = parse(dump(slo_doc(objectives=objectives)))
    assert plan.slos == [availability(objective_percent=99.0)]
    assert paths(plan.unsupported) == [
        (0, "SLO", "checkout-availability", "spec.objectives[1]"),
        (0, "SLO", "checkout-availability", "spec.objectives[2]"),
    ]
    assert plan.unsupported[0].message == (
        "only one objective per SLO; objective 2 ignored (the first is used)"
    )


def test_other_metric_sources_are_reported_and_the_slo_not_imported() -> None:
    prometheus = {
        "metricSource": {
            "type": "Prometheus",
            "spec": {"query": 'sum(rate(http_requests_total{code!~"5.."}[1m]))'},
        }
    }
    indicator = copy.deepcopy(AVAILABILITY)
    indicator["ratioMetric"]["good"] = prometheus
    plan = parse(dump(slo_doc(indicator={"metadata": {"name": "x"}, "spec": indicator})))
    assert plan.slos == []
    assert paths(plan.unsupported) == [
        (
            0,
            "SLO",
            "checkout-availability",
            "spec.indicator.spec.ratioMetric.good.metricSource.type",
        )
    ]
    assert plan.unsupported[0].message == (
        "metric source type 'Prometheus' is not supported: the portal queries no external "
        "system; use metricSource type opsportal and push per-minute aggregates to "
        "POST /api/v1/slo/events; the SLO is not imported"
    )


def test_threshold_metrics_are_reported_on_the_sli_and_the_slo_using_it() -> None:
    threshold = {"thresholdMetric": {"metricSource": {"type": "opsportal", "spec": {}}}}
    plan = parse(
        dump(
            sli_doc("p99-latency", threshold),
            slo_doc("by-ref", indicator=None, indicatorRef="p99-latency"),
            slo_doc("inline", indicator={"metadata": {"name": "x"}, "spec": threshold}),
        )
    )
    assert plan.slos == []
    assert paths(plan.unsupported) == [
        (0, "SLI", "p99-latency", "spec.thresholdMetric"),
        (1, "SLO", "by-ref", "spec.indicatorRef"),
        (2, "SLO", "inline", "spec.indicator.spec.thresholdMetric"),
    ]
    assert plan.unsupported[0].message.endswith("; SLOs using it are not imported")
    assert "ratio of fast requests to all requests" in plan.unsupported[0].message
    assert plan.unsupported[1].message == (
        "SLI 'p99-latency' (document 0) is not supported (see its problems); "
        "the SLO is not imported"
    )


def test_other_unsupported_indicator_features() -> None:
    gauge = copy.deepcopy(AVAILABILITY)
    gauge["ratioMetric"]["counter"] = False
    raw = {"ratioMetric": {"counter": True, "rawType": "success", "raw": src("requests")}}
    legacy = copy.deepcopy(AVAILABILITY)
    legacy["ratioMetric"]["good"] = {"source": "prometheus", "queryType": "promql", "query": "x"}
    ref = copy.deepcopy(AVAILABILITY)
    ref["ratioMetric"]["total"] = {"metricSource": {"metricSourceRef": "my-prometheus"}}
    docs = [sli_doc(name, spec) for name, spec in [("a", gauge), ("b", raw), ("c", legacy)]]
    docs.append(sli_doc("d", ref))
    docs += [slo_doc(f"slo-{n}", indicator=None, indicatorRef=n) for n in "abcd"]
    plan = parse(dump(*docs))
    assert plan.slos == []
    assert paths(plan.unsupported) == [
        (0, "SLI", "a", "spec.ratioMetric.counter"),
        (1, "SLI", "b", "spec.ratioMetric.raw"),
        (2, "SLI", "c", "spec.ratioMetric.good"),
        (3, "SLI", "d", "spec.ratioMetric.total.metricSource.metricSourceRef"),
        *[(4 + i, "SLO", f"slo-{n}", "spec.indicatorRef") for i, n in enumerate("abcd")],
    ]


def test_composite_slos_are_reported_and_not_imported() -> None:
    indicator = {"metadata": {"name": "x"}, "spec": AVAILABILITY}
    objectives = [{"target": 0.99, "compositeWeight": 1, "indicator": indicator}]
    plan = parse(dump(slo_doc("a", objectives=objectives), slo_doc("b", compositeSlo={})))
    assert plan.slos == []
    assert paths(plan.unsupported) == [
        (0, "SLO", "a", "spec.objectives[0].compositeWeight"),
        (1, "SLO", "b", "spec.compositeSlo"),
    ]


def test_alerting_objects_and_unknown_kinds_are_reported_and_slos_still_imported() -> None:
    def obj(kind: str, name: str) -> dict[str, Any]:
        return {"apiVersion": "openslo/v1", "kind": kind, "metadata": {"name": name}, "spec": {}}

    plan = parse(
        dump(
            obj("AlertCondition", "fast-burn"),
            obj("AlertNotificationTarget", "pagerduty"),
            obj("DataSource", "my-prometheus"),
            obj("Dashboard", "board"),
            slo_doc(alertPolicies=["checkout-fast-burn"]),
            sli_doc("unused", AVAILABILITY),
        )
    )
    assert plan.slos == [availability()]
    assert paths(plan.unsupported) == [
        (0, "AlertCondition", "fast-burn", ""),
        (1, "AlertNotificationTarget", "pagerduty", ""),
        (2, "DataSource", "my-prometheus", ""),
        (3, "Dashboard", "board", ""),
        (4, "SLO", "checkout-availability", "spec.alertPolicies"),
        (5, "SLI", "unused", ""),
    ]
    messages = [p.message for p in plan.unsupported]
    assert "burn-rate alerts" in messages[0] and "burn-rate alerts" in messages[4]
    assert "POST /api/v1/slo/events" in messages[2]
    assert messages[3] == "kind 'Dashboard' is not imported"
    assert messages[5] == "not referenced by any SLO (by indicatorRef); not imported"


def test_op_and_value_on_a_ratio_objective_are_ignored_with_a_note() -> None:
    plan = parse(dump(slo_doc(objectives=[{"op": "lte", "value": 300, "target": 0.99}])))
    assert plan.slos == [availability(objective_percent=99.0)]
    assert paths(plan.unsupported) == [(0, "SLO", "checkout-availability", "spec.objectives[0].op")]


def test_an_objective_level_indicator_replaces_the_slo_level_one() -> None:
    fast = {
        "ratioMetric": {
            "counter": True,
            "good": src("requests_faster_than", thresholdMs=250),
            "total": src("requests"),
        }
    }
    objective = {"target": 0.95, "indicator": {"metadata": {"name": "fast"}, "spec": fast}}
    plan = parse(dump(slo_doc(indicator=None, objectives=[objective])))
    assert plan.slos == [
        availability(sli_type="latency", objective_percent=95.0, latency_threshold_ms=250.0)
    ]


# Objectives ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objective", "percent"),
    [
        ({"target": 0.999}, 99.9),
        ({"targetPercent": 99.9}, 99.9),
        ({"target": 0.9995}, 99.95),
        ({"targetPercent": 99}, 99.0),
        ({"target": 0.5}, 50.0),
        ({"target": 0.123456}, 12.3456),
    ],
)
def test_target_and_target_percent(objective: dict[str, Any], percent: float) -> None:
    assert parse(dump(slo_doc(objectives=[objective]))).slos[0].objective_percent == percent


@pytest.mark.parametrize(
    ("objective", "path", "message"),
    [
        ({"target": 0.99, "targetPercent": 99}, "spec.objectives[0]", "needs exactly one of"),
        ({"displayName": "x"}, "spec.objectives[0]", "needs exactly one of"),
        ({"target": 1}, "spec.objectives[0].target", "above 0 and below 1"),
        ({"target": 0}, "spec.objectives[0].target", "above 0 and below 1"),
        ({"target": 99.9}, "spec.objectives[0].target", "above 0 and below 1"),
        ({"targetPercent": 100}, "spec.objectives[0].targetPercent", "above 0 and below 100"),
        ({"targetPercent": -1}, "spec.objectives[0].targetPercent", "above 0 and below 100"),
        ({"targetPercent": "99.9"}, "spec.objectives[0].targetPercent", "must be a number"),
        ({"target": True}, "spec.objectives[0].target", "must be a number"),
        ({"target": float("nan")}, "spec.objectives[0].target", "must be a number"),
        ({"target": 0.9999999}, "spec.objectives[0].target", "at most 4 decimals"),
    ],
)
def test_invalid_objectives_are_errors(objective: dict[str, Any], path: str, message: str) -> None:
    error = only_error(dump(slo_doc(objectives=[objective])))
    assert paths([error]) == [(0, "SLO", "checkout-availability", path)]
    assert message in error.message


# SLI combinations ---------------------------------------------------------------------------


def ratio(**parts: Any) -> dict[str, Any]:
    return {"ratioMetric": {"counter": True, **parts}}


@pytest.mark.parametrize(
    ("indicator", "fields"),
    [
        (ratio(good=src("good_requests"), total=src("requests")), {}),
        (ratio(bad=src("errors"), total=src("requests")), {}),
        (
            ratio(good=src("requests_faster_than", thresholdMs=1.5), total=src("requests")),
            {"sli_type": "latency", "latency_threshold_ms": 1.5},
        ),
        (
            ratio(good=src("counter", counter="ok"), total=src("counter", counter="all")),
            {"sli_type": "ratio", "good_counter": "ok", "total_counter": "all"},
        ),
    ],
)
def test_supported_combinations(indicator: dict[str, Any], fields: dict[str, Any]) -> None:
    text = dump(slo_doc(indicator={"metadata": {"name": "x"}, "spec": indicator}))
    assert parse(text).slos == [availability(**fields)]


@pytest.mark.parametrize(
    ("indicator", "path", "message"),
    [
        (
            ratio(bad=src("counter", counter="failed"), total=src("counter", counter="all")),
            "ratioMetric",
            "bad counter / total counter is not supported; supported opsportal ratios: ",
        ),
        (
            ratio(good=src("errors"), total=src("requests")),
            "ratioMetric",
            "good errors / total requests is not supported",
        ),
        (
            ratio(good=src("good_requests"), total=src("counter", counter="all")),
            "ratioMetric",
            "good good_requests / total counter is not supported",
        ),
        (
            ratio(good=src("requests"), bad=src("errors"), total=src("requests")),
            "ratioMetric",
            "needs exactly one of good or bad, and total",
        ),
        (ratio(good=src("good_requests")), "ratioMetric.total", "is required"),
        (
            {"ratioMetric": {"good": src("good_requests"), "total": src("requests")}},
            "ratioMetric.counter",
            "is required: true",
        ),
        (
            ratio(good=src("latency"), total=src("requests")),
            "ratioMetric.good.metricSource.spec.metric",
            "is required: one of requests, errors, good_requests, requests_faster_than, counter",
        ),
        (
            ratio(good=src("requests_faster_than"), total=src("requests")),
            "ratioMetric.good.metricSource.spec.thresholdMs",
            "is required: milliseconds, above 0",
        ),
        (
            ratio(good=src("requests_faster_than", thresholdMs=0), total=src("requests")),
            "ratioMetric.good.metricSource.spec.thresholdMs",
            "is required: milliseconds, above 0",
        ),
        (
            ratio(good=src("requests_faster_than", thresholdMs=10**400), total=src("requests")),
            "ratioMetric.good.metricSource.spec.thresholdMs",
            "is required: milliseconds, above 0",
        ),
        (
            ratio(good=src("good_requests"), total=src("requests", thresholdMS=3)),
            "ratioMetric.total.metricSource.spec.thresholdMS",
            "unknown field for metric requests",
        ),
        (
            ratio(good=src("counter", counter=""), total=src("counter", counter="all")),
            "ratioMetric.good.metricSource.spec.counter",
            "is required: a counter name, 1-64 characters",
        ),
        (
            ratio(good={"metricSource": {"spec": {}}}, total=src("requests")),
            "ratioMetric.good.metricSource.type",
            "is required (type: opsportal)",
        ),
        ({"ratioMetric": None}, "ratioMetric", "is required"),
    ],
)
def test_invalid_indicators_are_errors(indicator: dict[str, Any], path: str, message: str) -> None:
    error = only_error(dump(slo_doc(indicator={"metadata": {"name": "x"}, "spec": indicator})))
    assert error.path == f"spec.indicator.spec.{path}"
    assert message in error.message


# Errors -------------------------------------------------------------------------------------


def test_all_errors_are_collected_with_document_indexes() -> None:
    text = dump(
        {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": "Checkout"}},
        slo_doc("fine"),
        ["not", "an", "object"],
        slo_doc("broken", service=None, budgetingMethod="Daily", timeWindow=None),
        slo_doc("by-ref", indicator=None, indicatorRef="missing"),
        slo_doc("fine"),
        {"kind": "SLO", "metadata": {}},
        slo_doc("timeslices", budgetingMethod="Timeslices", objectives=[{"target": 2}]),
    )
    errors = errors_of(text)
    assert paths(errors) == [
        (0, "Service", "Checkout", "metadata.name"),
        (2, "", "", ""),
        (3, "SLO", "broken", "spec.service"),
        (3, "SLO", "broken", "spec.timeWindow"),
        (3, "SLO", "broken", "spec.budgetingMethod"),
        (4, "SLO", "by-ref", "spec.indicatorRef"),
        (5, "SLO", "fine", "metadata.name"),
        (6, "SLO", "", "apiVersion"),
        (6, "SLO", "", "metadata.name"),
        (6, "SLO", "", "spec"),
        (7, "SLO", "timeslices", "spec.objectives[0].target"),
    ]
    messages = [e.message for e in errors]
    assert messages[0].startswith("'Checkout' is not a valid name: lowercase letters")
    assert messages[1] == "must be a mapping (an OpenSLO object), not list"
    assert messages[2].startswith("None is not a valid name")
    assert messages[5] == "no SLI named 'missing' in this input"
    assert messages[6] == "duplicate SLO name (also document 1)"
    assert messages[7] == "is required: openslo/v1"


def test_the_error_message_names_document_kind_name_and_path() -> None:
    with pytest.raises(OpenSLOError) as info:
        parse(dump(slo_doc(budgetingMethod="Weekly"), slo_doc("Bad_Name")))
    assert str(info.value) == (
        "invalid OpenSLO input:\n"
        "  document 0 (SLO 'checkout-availability'), spec.budgetingMethod: "
        "must be Occurrences, Timeslices or RatioTimeslices\n"
        "  document 1 (SLO 'Bad_Name'), metadata.name: 'Bad_Name' is not a valid name: "
        "lowercase letters, digits and '-', 1 to 63 characters, starting and ending with a "
        "letter or digit"
    )
    assert isinstance(info.value, ValueError)


def test_slos_may_name_services_not_in_the_file() -> None:
    plan = parse(dump(slo_doc(service="billing")))
    assert plan.services == []
    assert plan.slos == [availability(service="billing")]


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("openslo/v1alpha", "openslo/v1alpha is not supported; convert to openslo/v1"),
        ("openslo/v2alpha", "'openslo/v2alpha' is not supported; expected openslo/v1"),
        (None, "is required: openslo/v1"),
    ],
)
def test_api_version(version: str | None, message: str) -> None:
    doc = slo_doc()
    doc["apiVersion"] = version
    if version is None:
        del doc["apiVersion"]
    error = only_error(dump(doc))
    assert (error.document, error.path, error.message) == (0, "apiVersion", message)


def test_invalid_yaml_names_the_document_and_line() -> None:
    text = dump(slo_doc()) + "---\nkind: SLO\nmetadata: {name: x\n"
    error = only_error(text)
    assert error.document == 1
    assert error.message.startswith("invalid YAML at line ")
    assert only_error("kind: [unclosed\n").message.startswith("invalid YAML at line 2, column 1:")


def test_deeply_nested_yaml_is_an_error_not_a_crash() -> None:
    assert only_error("[" * 50_000 + "]" * 50_000).message.startswith("invalid YAML")


def test_size_and_document_limits() -> None:
    assert only_error("#" * 1_000_001).message == "input is larger than 1000000 bytes"
    many = "---\n{apiVersion: openslo/v1, kind: Service, metadata: {name: s}}\n" * 501
    assert only_error(many).message == "more than 500 documents"
    many_items = yaml.safe_dump([slo_doc(f"s{i}") for i in range(501)])
    assert only_error(many_items).message == "more than 500 documents"


def test_other_envelope_errors() -> None:
    text = dump(
        {"apiVersion": "openslo/v1", "metadata": {"name": "x"}},
        {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": "x"}, "spec": None},
        {"apiVersion": "openslo/v1", "kind": "Service", "metadata": "svc"},
        {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": 404}},
        {
            "apiVersion": "openslo/v1",
            "kind": "Service",
            "metadata": {"name": "s", "displayName": 1},
        },
        slo_doc(description=["x"], indicator=None),
        slo_doc("dup"),
        slo_doc("dup", indicatorRef="x"),
    )
    assert paths(errors_of(text)) == [
        (0, "", "x", "kind"),
        (1, "SLI", "x", "spec"),
        (2, "Service", "", "metadata"),
        (3, "Service", "", "metadata.name"),
        (4, "Service", "s", "metadata.displayName"),
        (5, "SLO", "checkout-availability", "spec.description"),
        (5, "SLO", "checkout-availability", "spec"),
        (7, "SLO", "dup", "metadata.name"),
        (7, "SLO", "dup", "spec"),
    ]


def test_window_details() -> None:
    plan = parse(dump(slo_doc(timeWindow=[{"duration": "30d"}])))  # rolling unless calendar
    assert plan.slos == [availability(window_days=30)]
    two = [{"duration": "7d", "isRolling": True}, {"duration": "28d", "isRolling": True}]
    text = dump(
        slo_doc("a", timeWindow=two),
        slo_doc("b", timeWindow=[{"duration": "28d", "isRolling": "yes"}]),
        slo_doc("c", timeWindow=[{"duration": "28 days", "isRolling": True}]),
        slo_doc("d", timeWindow={"duration": "28d", "isRolling": True}),
    )
    assert paths(errors_of(text)) == [
        (0, "SLO", "a", "spec.timeWindow"),
        (1, "SLO", "b", "spec.timeWindow[0].isRolling"),
        (2, "SLO", "c", "spec.timeWindow[0].duration"),
        (3, "SLO", "d", "spec.timeWindow"),
    ]


@pytest.mark.parametrize(
    "name", ["checkout\n", "-checkout", "checkout-", "a" * 64, "Check", "", 7, ["x"]]
)
def test_names_follow_the_portal_rule(name: Any) -> None:
    error = only_error(dump(slo_doc(service=name)))
    shown = "a list" if isinstance(name, list) else repr(name)
    assert (error.path, error.message) == (
        "spec.service",
        f"{shown} is not a valid name: lowercase letters, digits and '-', 1 to 63 "
        "characters, starting and ending with a letter or digit",
    )


def test_problems_read_well() -> None:
    assert str(Problem(3, "", "", "", "invalid YAML")) == "document 3: invalid YAML"
    assert str(Problem(0, "SLO", "", "spec", "x")) == "document 0 (SLO), spec: x"
    assert str(Problem(1, "SLI", "a", "", "x")) == "document 1 (SLI 'a'): x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 2024-13-01\n", "invalid YAML: month must be in 1..12"),
        ("a: " + "1" * 5000, "invalid YAML: Exceeds the limit (4300 digits)"),
        ("a: !!python/object:os.system x\n", "invalid YAML at line 1, column 4: "),
    ],
)
def test_values_yaml_cannot_construct_are_errors(text: str, message: str) -> None:
    assert only_error(text).message.startswith(message)


def test_alias_bombs_are_not_expanded_into_messages() -> None:
    letters = "abcdefghi"  # 10**9 strings once expanded
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in itertools.pairwise(letters)
    )
    text = bomb + "apiVersion: *i\nkind: SLO\nmetadata: {name: *i}\nspec: {service: *i}\n"
    assert paths(errors_of(text)) == [
        (0, "SLO", "", "apiVersion"),
        (0, "SLO", "", "metadata.name"),
        (0, "SLO", "", "spec.service"),
        (0, "SLO", "", "spec.timeWindow"),
        (0, "SLO", "", "spec.budgetingMethod"),
        (0, "SLO", "", "spec.objectives"),
        (0, "SLO", "", "spec"),
    ]
