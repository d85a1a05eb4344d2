"""The SLO tile of the admin overview: SLOs by budget status, pages and tickets firing, open
canaries and their verdicts, the latest daily report."""

from __future__ import annotations

from apps.core.overview import Tile, register_tile
from apps.slo import selectors
from apps.tenancy.selectors import displayed_tenant


@register_tile(120)
def slo_tile(request) -> Tile:
    tenant = displayed_tenant(request)
    if tenant is None:
        return Tile(title="SLOs", status="idle", note="no tenant selected")
    figures = selectors.overview(tenant)
    if not figures["slos"]:
        return Tile(title="SLOs", status="idle", note="no SLOs defined", link="/admin/slo/slo/")
    status = "ok"
    if figures["at_risk"] or figures["tickets"] or figures["no_data"]:
        status = "warn"
    if figures["exhausted"] or figures["pages"] or figures["rollbacks"]:
        status = "bad"
    return Tile(
        title="SLOs",
        status=status,
        figures=[
            ("SLOs", str(figures["slos"])),
            ("budget ok", str(figures["ok"])),
            ("at risk (< 25 % left)", str(figures["at_risk"])),
            ("budget exhausted", str(figures["exhausted"])),
            ("pages firing", str(figures["pages"])),
            ("tickets firing", str(figures["tickets"])),
            ("open canaries", str(figures["canaries"])),
            ("canaries to roll back", str(figures["rollbacks"])),
            ("latest daily report", figures["latest_report"] or "none yet"),
        ],
        link="/admin/slo/slo/",
        note="burn-rate alerts every minute; report daily at 09:00 local",
    )
