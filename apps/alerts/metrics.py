"""Alert metrics. Counters and the latency histogram are recorded where things happen (web and
worker processes share PROMETHEUS_MULTIPROC_DIR under `make run`); the DLQ size and breaker
states are read from the database at scrape time."""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

ALERTS_RAISED = Counter(
    "opsportal_alerts_raised_total", "Alerts raised (new, not dedup hits)", ["tier", "source"]
)
ALERTS_DEDUPLICATED = Counter(
    "opsportal_alerts_deduplicated_total", "Raises folded into a firing alert", ["tier"]
)
DELIVERIES = Counter(
    "opsportal_alert_deliveries_total",
    "Delivery attempts by channel kind and outcome",
    ["channel", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "opsportal_alert_delivery_latency_seconds",
    "From the notification's creation to the receiver's acknowledgement of the request",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class AlertDatabaseCollector:
    def collect(self):
        from django.db.models import Count

        from apps.alerts.models import ChannelHealth, Delivery, DeliveryStatus

        dlq = GaugeMetricFamily(
            "opsportal_alert_dlq_size",
            "Dead-lettered deliveries by tenant and channel kind",
            labels=["tenant", "channel"],
        )
        breaker = GaugeMetricFamily(
            "opsportal_alert_channel_breaker_state",
            "Circuit breaker per channel: 0 closed, 1 half-open, 2 open",
            labels=["tenant", "channel"],
        )
        rows = (
            Delivery.objects.filter(status=DeliveryStatus.DEAD)
            .values("tenant__slug", "channel__kind")
            .annotate(n=Count("id"))
        )
        for row in rows:
            dlq.add_metric([row["tenant__slug"], row["channel__kind"]], row["n"])
        for tenant, name, state in ChannelHealth.objects.values_list(
            "tenant__slug", "channel__name", "state"
        ):
            breaker.add_metric([tenant, name], BREAKER_VALUES.get(state, 0))
        yield dlq
        yield breaker
