"""The overrides tile of the admin overview: the pending queue and approvals about to expire."""

from __future__ import annotations

from apps.core.overview import Tile, register_tile
from apps.overrides import selectors
from apps.overrides.models import Override
from apps.tenancy.selectors import displayed_tenant


@register_tile(101)
def overrides_tile(request) -> Tile:
    tenant = displayed_tenant(request)
    if tenant is None:
        return Tile(title="Overrides", status="idle", note="no tenant selected")
    pending = selectors.pending(tenant).count()
    expiring = selectors.expiring_soon(Override.objects.for_tenant(tenant)).count()
    return Tile(
        title="Overrides",
        status="warn" if pending or expiring else "ok",
        figures=[("pending decision", str(pending)), ("expiring within 3 days", str(expiring))],
        link="/admin/overrides/override/?state__exact=PENDING",
    )
