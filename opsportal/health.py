"""Operations endpoints: /healthz (alive), /readyz (can serve), /metrics (Prometheus)."""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from opsportal.api.problems import problem_response
from opsportal.metrics import database_collectors


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_migrations() -> str | None:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        return f"{len(plan)} migration(s) not applied"
    return None


def _check_broker() -> str | None:
    from opsportal.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    except Exception as exc:
        return f"broker unreachable: {type(exc).__name__}"
    return None


def _check_beat() -> str | None:
    from apps.core.models import Heartbeat
    from apps.core.services import BEAT_HEARTBEAT

    beat = Heartbeat.objects.filter(name=BEAT_HEARTBEAT).values_list("beat_at", flat=True).first()
    if beat is None:
        return "beat has never sent a heartbeat"
    age = (timezone.now() - beat).total_seconds()
    if age > settings.BEAT_HEARTBEAT_MAX_AGE_SECONDS:
        return f"beat heartbeat is {int(age)} s old"
    return None


@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    checks: dict[str, str | None] = {"database": _check_database()}
    if checks["database"] is None:
        checks["migrations"] = _check_migrations()
        checks["beat"] = _check_beat()
    checks["broker"] = _check_broker()
    failing = {name: reason for name, reason in checks.items() if reason}
    if failing:
        return problem_response(
            503,
            "Not ready: " + "; ".join(f"{name}: {reason}" for name, reason in failing.items()),
            errors=failing,
            headers={"Retry-After": "10"},
        )
    return JsonResponse({"status": "ready", "checks": {name: "ok" for name in checks}})


class _DatabaseCollector:
    """Figures that live in the database because other processes produce them."""

    def collect(self):
        from apps.core.models import OutboxMessage, TaskOutcome

        backlog = GaugeMetricFamily("opsportal_outbox_backlog", "Outbox messages not dispatched")
        outcomes = GaugeMetricFamily(
            "opsportal_celery_task_outcomes", "Celery task outcomes", labels=["task", "state"]
        )
        try:
            backlog.add_metric([], OutboxMessage.objects.filter(dispatched_at__isnull=True).count())
            for row in TaskOutcome.objects.values_list("task_name", "state", "count"):
                outcomes.add_metric([row[0], row[1]], row[2])
        except Exception:  # a scrape must not fail because the database is down
            return
        yield backlog
        yield outcomes


class _Guarded:
    """A domain collector whose failure (database down) drops its figures, not the scrape."""

    def __init__(self, collector):
        self.collector = collector

    def collect(self):
        try:
            return list(self.collector.collect())
        except Exception:
            return []


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if settings.METRICS_TOKEN:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied, settings.METRICS_TOKEN):
            return problem_response(
                401,
                "A bearer token is required for /metrics.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    from apps.tenancy.rls import all_tenants_context

    registry = CollectorRegistry()
    registry.register(_DatabaseCollector())
    for collector in database_collectors():
        registry.register(_Guarded(collector))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(process_registry)
    else:
        process_registry = REGISTRY
    with all_tenants_context():
        body = generate_latest(process_registry) + generate_latest(registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
