"""The DR drills tile of the admin overview: the last drill and its result, RTO against its
target, the age of the newest backup, and the next scheduled run."""

from __future__ import annotations

from apps.core.overview import Tile, register_tile
from apps.drills import selectors
from apps.tenancy.selectors import displayed_tenant


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "no backup yet"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@register_tile(125)
def drills_tile(request) -> Tile:
    tenant = displayed_tenant(request)
    if tenant is None:
        return Tile(title="DR drills", status="idle", note="no tenant selected")
    figures = selectors.overview(tenant)
    if not figures["drills"]:
        return Tile(
            title="DR drills", status="idle", note="no drills defined", link="/admin/drills/drill/"
        )
    latest = figures["latest"]
    status = "ok"
    if latest is None:
        status = "warn"
    elif figures["failing"]:
        status = "bad"
    rows = [("drills", str(figures["drills"])), ("failing", str(figures["failing"]))]
    if latest is not None:
        rows.append(
            (
                "last drill",
                f"{latest.name}: {latest.last_status} {latest.last_finished_at:%Y-%m-%d %H:%M}",
            )
        )
        if latest.last_rto is not None:
            rows.append(
                ("RTO vs target", f"{latest.last_rto:.1f} s / {latest.rto_target_seconds} s")
            )
    else:
        rows.append(("last drill", "never run"))
    rows.append(("backup age", _age(figures["backup_age_seconds"])))
    next_run = figures["next_run"]
    rows.append(("next drill", f"{next_run:%Y-%m-%d %H:%M %Z}" if next_run else "none scheduled"))
    return Tile(
        title="DR drills",
        status=status,
        figures=rows,
        link="/admin/drills/drill/",
        note="weekly shadow restores; backups daily",
    )
