"""Prometheus metrics. Request metrics live in-process (multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set, e.g. under gunicorn); Celery task outcomes and the outbox backlog
are read from the database at scrape time, because they happen in other processes."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("opsportal_http_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "opsportal_http_request_duration_seconds",
    "HTTP request latency",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


_children: dict[tuple[str, str, int], tuple] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count and time one request; label children are cached (labels() is not free)."""
    key = (route, method, status)
    children = _children.get(key)
    if children is None:
        children = (REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method))
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)


_database_collectors: list = []


def register_database_collector(collector) -> None:
    """Domain apps add collectors that read their figures from the database at scrape time."""
    _database_collectors.append(collector)


def database_collectors() -> list:
    return list(_database_collectors)
