from django.contrib import admin, messages

from apps.core import services
from apps.core.admin_mixins import ReadOnlyAdmin
from apps.core.models import IdempotencyRecord, OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "task_name", "created_at", "dispatched_at", "attempts", "last_error"]
    list_filter = ["task_name"]
    actions = ["replay"]

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.action(description="Send selected pending messages now")
    def replay(self, request, queryset):
        sent = sum(
            1
            for pk in queryset.filter(dispatched_at__isnull=True).values_list("pk", flat=True)
            if services.dispatch(pk)
        )
        messages.info(request, f"{sent} message(s) sent to the broker.")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "endpoint", "key", "response_status"]

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser
