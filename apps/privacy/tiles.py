"""The privacy tile of the admin overview: requests by status and the nearest due dates."""

from __future__ import annotations

from apps.core.overview import Tile, register_tile
from apps.privacy import selectors
from apps.tenancy.selectors import displayed_tenant


@register_tile(122)
def privacy_tile(request) -> Tile:
    tenant = displayed_tenant(request)
    if tenant is None:
        return Tile(title="Privacy requests", status="idle", note="no tenant selected")
    figures = selectors.overview(tenant)
    if not figures["total"]:
        return Tile(
            title="Privacy requests",
            status="idle",
            note="no requests yet",
            link="/admin/privacy/privacyrequest/",
        )
    status = "bad" if figures["overdue"] else ("warn" if figures["due_in_7_days"] else "ok")
    if figures["failed_sources"] and status == "ok":
        status = "warn"
    by_status = ", ".join(
        f"{n} {s.replace('_', ' ')}" for s, n in sorted(figures["by_status"].items())
    )
    rows = [
        ("open", str(figures["open"])),
        ("overdue", str(figures["overdue"])),
        ("due within 7 days", str(figures["due_in_7_days"])),
        ("by status", by_status),
    ]
    rows += [
        (f"#{r.pk} {r.request_type}", f"due {r.due_on:%Y-%m-%d} ({r.status})")
        for r in figures["nearest"]
    ]
    rows.append(("erased in 30 days", str(figures["erasures_30d"])))
    rows.append(("active restrictions", str(figures["restrictions"])))
    run = figures["last_retention"]
    if run is not None:
        deleted = sum(entry["rows"] for entry in run.report.get("policies", {}).values())
        rows.append(("retention", f"{run.local_date:%Y-%m-%d}: {deleted} rows ({run.status})"))
    return Tile(
        title="Privacy requests",
        status=status,
        figures=rows,
        link="/admin/privacy/privacyrequest/",
        note="statutory deadlines: GDPR, PIPEDA, PDPL, CCPA",
    )
