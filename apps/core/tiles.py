"""The foundation's overview tiles: tenancy, audit and the platform plumbing, plus placeholders
for the domains that later issues build."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from apps.audit.models import AuditChain, AuditEvent
from apps.core.models import Heartbeat, OutboxMessage
from apps.core.overview import Tile, register_tile
from apps.core.services import BEAT_HEARTBEAT
from apps.tenancy.models import ApiToken, Membership
from apps.tenancy.selectors import tenants_of


def _scoped(queryset, request):
    tenant = getattr(request, "tenant", None)
    return queryset.for_tenant(tenant) if tenant is not None else queryset


@register_tile(10)
def tenancy_tile(request) -> Tile:
    tokens = _scoped(ApiToken.objects.filter(revoked_at__isnull=True), request)
    return Tile(
        title="Tenants & access",
        figures=[
            ("tenants", str(len(tenants_of(request.user)))),
            ("members", str(_scoped(Membership.objects.all(), request).count())),
            ("active API tokens", str(tokens.count())),
        ],
        link="/admin/tenancy/apitoken/",
    )


@register_tile(20)
def audit_tile(request) -> Tile:
    events = _scoped(AuditEvent.objects.all(), request)
    last = events.order_by("-id").first()
    return Tile(
        title="Audit trail",
        figures=[
            ("events", str(events.count())),
            ("chains", str(AuditChain.objects.count())),
            ("last event", last.action if last else "none"),
        ],
        link="/admin/audit/auditevent/",
        note="manage.py verify_audit proves the chain",
    )


@register_tile(30)
def platform_tile(request) -> Tile:
    beat = Heartbeat.objects.filter(name=BEAT_HEARTBEAT).values_list("beat_at", flat=True).first()
    age = int((timezone.now() - beat).total_seconds()) if beat else None
    backlog = OutboxMessage.objects.filter(dispatched_at__isnull=True).count()
    stale = age is None or age > settings.BEAT_HEARTBEAT_MAX_AGE_SECONDS
    return Tile(
        title="Workers & outbox",
        status="bad" if stale else ("warn" if backlog else "ok"),
        figures=[
            ("beat heartbeat", f"{age} s ago" if age is not None else "never"),
            ("outbox backlog", str(backlog)),
        ],
        link="/admin/core/outboxmessage/",
    )
