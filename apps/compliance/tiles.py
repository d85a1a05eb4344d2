"""The compliance tile of the admin overview: rule colours and blocked pull requests."""

from __future__ import annotations

from apps.compliance import selectors
from apps.compliance.models import Decision, PullRequest
from apps.core.overview import Tile, register_tile
from apps.tenancy.selectors import displayed_tenant


@register_tile(100)
def compliance_tile(request) -> Tile:
    tenant = displayed_tenant(request)
    if tenant is None:
        return Tile(title="Compliance gate", status="idle", note="no tenant selected")
    statuses = selectors.rule_statuses(tenant)
    red = sum(1 for s in statuses if s.status == selectors.RED)
    yellow = sum(1 for s in statuses if s.status == selectors.YELLOW)
    blocked = PullRequest.objects.for_tenant(tenant).filter(decision=Decision.BLOCKED).count()
    return Tile(
        title="Compliance gate",
        status="bad" if red else ("warn" if yellow else "ok"),
        figures=[
            ("rules red / yellow / green", f"{red} / {yellow} / {len(statuses) - red - yellow}"),
            ("pull requests blocked", str(blocked)),
        ],
        link="/admin/compliance/",
    )
