"""The flags tile of the admin overview: flags changed in 24 h, kill switches engaged, flags on in
production."""

from __future__ import annotations

from apps.core.overview import Tile, register_tile
from apps.flags import selectors
from apps.tenancy.selectors import displayed_tenant


@register_tile(110)
def flags_tile(request) -> Tile:
    tenant = displayed_tenant(request)
    if tenant is None:
        return Tile(title="Feature flags", status="idle", note="no tenant selected")
    figures = selectors.overview(tenant)
    return Tile(
        title="Feature flags",
        status="warn" if figures["killed"] else "ok",
        figures=[
            ("flags", str(figures["flags"])),
            ("changed in 24 h", str(figures["changed_24h"])),
            ("kill switches engaged", str(figures["killed"])),
            ("rollouts in progress", str(figures["rollouts"])),
            ("on in production", str(figures["on_in_production"])),
            ("potentially stale", str(figures["stale"])),
            ("change requests waiting", str(figures["pending_changes"])),
            ("scheduled changes", str(figures["scheduled_changes"])),
        ],
        link="/admin/flags/flag/?stale=yes" if figures["stale"] else "/admin/flags/flag/",
        note="served over OFREP and flagd sync",
    )
