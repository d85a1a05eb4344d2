"""The alerts tile of the admin overview: firing alerts by tier and the dead-letter queue."""

from __future__ import annotations

from apps.alerts.models import Delivery
from apps.alerts.selectors import firing_by_tier
from apps.core.overview import Tile, register_tile


@register_tile(105)
def alerts_tile(request) -> Tile:
    tenant = getattr(request, "tenant", None)
    firing = firing_by_tier(tenant)
    dead = Delivery.objects.dead()
    dlq = (dead.for_tenant(tenant) if tenant is not None else dead).count()
    status = "bad" if firing.get(1) else ("warn" if dlq or firing else "ok")
    return Tile(
        title="Alerts",
        status=status,
        figures=[
            ("tier 1 firing", str(firing.get(1, 0))),
            ("tier 2 firing", str(firing.get(2, 0))),
            ("tier 3 firing", str(firing.get(3, 0))),
            ("dead letters", str(dlq)),
        ],
        link="/admin/alerts/alert/?status__exact=firing",
        note="DLQ: /admin/alerts/deadletter/",
    )
