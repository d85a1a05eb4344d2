import hashlib
import json

from django.contrib import admin
from django.http import HttpResponse

from apps.audit.hashing import event_fields
from apps.audit.models import AuditEvent, EvidenceArtifact
from apps.core.admin_mixins import ReadOnlyAdmin, TenantScopedAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = [
        "created_at",
        "chain",
        "seq",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "request_id",
    ]
    list_filter = ["action", "target_type", "chain"]
    search_fields = ["action", "target_id", "request_id", "actor_label"]
    date_hierarchy = "created_at"
    actions = ["export_jsonl"]

    @admin.action(description="Export selected as JSON lines (with manifest hash)")
    def export_jsonl(self, request, queryset):
        lines = [
            json.dumps(
                {**event_fields(e), "prev_hash": e.prev_hash, "hash": e.hash}, sort_keys=True
            )
            for e in queryset.order_by("chain", "seq")
        ]
        body = "".join(line + "\n" for line in lines)
        manifest = {"events": len(lines), "sha256": hashlib.sha256(body.encode()).hexdigest()}
        response = HttpResponse(
            body + json.dumps({"manifest": manifest}) + "\n", content_type="application/x-ndjson"
        )
        response["Content-Disposition"] = 'attachment; filename="audit-export.jsonl"'
        return response


@admin.register(EvidenceArtifact)
class EvidenceArtifactAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = ["created_at", "kind", "period", "tenant", "sha256"]
    list_filter = ["kind"]
    search_fields = ["kind", "period", "sha256"]
