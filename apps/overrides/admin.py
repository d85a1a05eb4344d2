"""Overrides in the admin: the pending queue first, approve / reject (with a reason form) /
revoke actions through the same services as the API, and expiring approvals highlighted."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from apps.core.admin_mixins import TenantScopedAdmin, ask_reason_then
from apps.overrides import selectors, services
from apps.overrides.models import Override, OverrideState


class ExpiringFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiring"

    def lookups(self, request, model_admin):
        return [("3d", "approved, expiring within 3 days")]

    def queryset(self, request, queryset):
        return selectors.expiring_soon(queryset) if self.value() == "3d" else queryset


@admin.register(Override)
class OverrideAdmin(TenantScopedAdmin):
    list_display = [
        "id",
        "state",
        "pull_request",
        "rule",
        "requested_by_label",
        "short_reason",
        "requested_days",
        "expiry",
        "decided_by_label",
    ]
    list_filter = ["state", ExpiringFilter, "rule"]
    search_fields = ["reason", "fingerprint", "pull_request__repository", "requested_by_label"]
    list_select_related = ["pull_request", "rule"]
    actions = ["approve", "reject", "revoke"]
    readonly_fields = [f.name for f in Override._meta.fields]
    ordering = ["-requested_at"]

    def changelist_view(self, request, extra_context=None):
        """The pending queue is the default view."""
        if not request.GET and request.method == "GET":
            request.GET = request.GET.copy()
            request.GET["state__exact"] = OverrideState.PENDING
            request.META["QUERY_STRING"] = request.GET.urlencode()
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request):
        return False  # requested through the API, where the requester is known

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="reason")
    def short_reason(self, obj: Override) -> str:
        return obj.reason[:80]

    @admin.display(description="expires", ordering="expires_at")
    def expiry(self, obj: Override):
        if obj.expires_at is None:
            return "-"
        stamp = timezone.localtime(obj.expires_at).strftime("%Y-%m-%d %H:%M")
        left = obj.expires_at - timezone.now()
        if obj.state == OverrideState.APPROVED and timedelta(0) < left <= selectors.EXPIRING_SOON:
            return format_html(
                '<span class="expiring-soon">{} (in {} h)</span>',
                stamp,
                int(left.total_seconds() // 3600),
            )
        return stamp

    def _decide(self, request, queryset, label: str, decide) -> None:
        if not selectors.can_decide(request.user, request):
            self.message_user(
                request,
                "Only a compliance admin or tenant admin of this tenant decides overrides.",
                messages.ERROR,
            )
            return
        done, refused = 0, []
        for override in queryset:
            try:
                decide(override)
                done += 1
            except (services.InvalidTransition, services.FourEyesViolation) as exc:
                refused.append(f"#{override.pk}: {exc}")
            except services.OverrideError as exc:
                refused.append(f"#{override.pk}: {exc}")
        if done:
            self.message_user(request, f"{label} {done} override(s).", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, problem, messages.WARNING)

    @admin.action(description="Approve selected overrides")
    def approve(self, request, queryset):
        self._decide(request, queryset, "Approved", services.approve_override)

    @admin.action(description="Reject selected overrides (asks for a reason)")
    def reject(self, request, queryset):
        return ask_reason_then(
            self,
            request,
            queryset,
            action="reject",
            title="Reject overrides",
            describe=lambda o: f"{o.rule_id} on {o.pull_request}: {o.reason[:120]}",
            apply=lambda reason: self._decide(
                request, queryset, "Rejected", lambda o: services.reject_override(o, reason)
            ),
        )

    @admin.action(description="Revoke selected approvals")
    def revoke(self, request, queryset):
        self._decide(
            request,
            queryset,
            "Revoked",
            lambda o: services.revoke_override(o, f"revoked by {request.user.get_username()}"),
        )
