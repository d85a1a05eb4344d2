"""Privacy requests in the admin: the queue by due date, and one action per lifecycle step.
Only privacy officers and tenant admins (and superusers) see and act on them: they hold personal
data. Writes go through apps/privacy/services.py."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin_mixins import TenantScopedAdmin
from apps.privacy import rights, services, verification
from apps.privacy.models import (
    ConsentRecord,
    PrivacyRequest,
    PrivacySettings,
    ProcessingActivity,
    Status,
)
from apps.tenancy.roles import Role
from apps.tenancy.selectors import has_role_in_active_tenant

PRIVACY_ROLES = (Role.PRIVACY_OFFICER, Role.TENANT_ADMIN)


class PrivacyOnly:
    def _privacy(self, request) -> bool:
        return has_role_in_active_tenant(request.user, request, PRIVACY_ROLES)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._privacy(request)

    def has_module_permission(self, request):
        return super().has_module_permission(request) and self._privacy(request)

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._privacy(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._privacy(request)

    def has_delete_permission(self, request, obj=None):
        return False  # requests are records of what was asked and answered


def _step(target: str, description: str, *, note: str = ""):
    def action(modeladmin, request, queryset):
        moved = 0
        for item in queryset:
            try:
                services.transition(item, target, note=note, by=request.user.get_username())
                moved += 1
            except (services.InvalidTransition, ValidationError) as exc:
                text = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
                modeladmin.message_user(request, f"#{item.pk}: {text}", messages.ERROR)
        if moved:
            modeladmin.message_user(request, f"{moved} request(s) now {target}.")

    action.__name__ = f"to_{target}"
    action.short_description = description
    return action


def _fields_text(entry: dict) -> str:
    parts = []
    for name, field in sorted(entry.get("fields", {}).items()):
        if field.get("legal_hold"):
            parts.append(f"{name}: legal hold")
        elif field.get("strategy", "keep") != "keep":
            parts.append(f"{name}: {field['strategy']} ({field.get('values', 0)})")
    return ", ".join(parts) or "nothing to change"


def _holds_text(retained: dict) -> str:
    """Fields kept on legal hold, grouped by their reason."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in sorted(retained.items()):
        by_reason.setdefault(reason, []).append(name)
    return "; ".join(f"{', '.join(names)} kept: {reason}" for reason, names in by_reason.items())


class PrivacyRequestForm(forms.ModelForm):
    """The add form checks what the service would refuse, so errors show on the form."""

    class Meta:
        model = PrivacyRequest
        fields = (
            "tenant",
            "request_type",
            "jurisdiction",
            "subject_email",
            "subject_external_id",
            "channel",
            "notes",
            "corrections",
            "purposes",
        )

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None:
            return cleaned
        kind, tenant = cleaned.get("request_type"), cleaned.get("tenant")
        if not (cleaned.get("subject_email") or cleaned.get("subject_external_id")):
            raise ValidationError("Give the subject's email or external id (or both).")
        if tenant is not None and kind == "rectification":
            try:
                rights.clean_corrections(tenant, cleaned.get("corrections"))
            except ValidationError as exc:
                raise ValidationError({"corrections": exc.messages}) from None
        if kind in rights.RESTRICTING_TYPES:
            cleaned["purposes"] = rights.clean_purposes(cleaned.get("purposes"))
        return cleaned


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(PrivacyOnly, TenantScopedAdmin):
    form = PrivacyRequestForm
    list_display = (
        "id",
        "request_type",
        "jurisdiction",
        "subject_label",
        "status",
        "due_display",
        "received_at",
        "duplicate_of",
    )
    list_filter = ("status", "request_type", "jurisdiction", "extended")
    search_fields = ("subject_email", "subject_external_id")
    readonly_fields = (
        "status",
        "received_on",
        "due_on",
        "acknowledge_by",
        "extended",
        "extension_reason",
        "extension_notice_on",
        "paused_since",
        "paused_seconds",
        "duplicate_of",
        "verified_at",
        "verification_method",
        "last_note",
        "allowed",
        "plan_display",
        "outcome_display",
        "evidence",
        "version",
    )
    fields = (
        "tenant",
        "request_type",
        "jurisdiction",
        "subject_email",
        "subject_external_id",
        "channel",
        "notes",
        "corrections",
        "purposes",
        *readonly_fields,
    )
    actions = [
        "send_code",
        "dry_run",
        _step(
            Status.VERIFIED,
            "Verify identity by hand (recorded as manual)",
            note="verified by a privacy officer in the admin",
        ),
        _step(Status.APPROVED, "Approve"),
        _step(Status.IN_PROGRESS, "Start processing"),
        _step(Status.REQUIRES_INPUT, "Needs input from the subject"),
        _step(Status.PAUSED, "Pause (stops the clock)"),
        _step(Status.REJECTED, "Reject"),
        _step(Status.CANCELED, "Cancel"),
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return tuple(self.fields) + self.readonly_fields  # changes go through the actions

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return super().get_fieldsets(request, obj)
        return (
            (
                None,
                {
                    "fields": (
                        ("request_type", "jurisdiction", "status"),
                        ("subject_email", "subject_external_id", "channel"),
                        ("received_on", "due_on", "acknowledge_by"),
                        "last_note",
                        "allowed",
                    )
                },
            ),
            (
                "What the right does",
                {"fields": ("corrections", "purposes", "plan_display", "outcome_display")},
            ),
            (
                "Clock, identity and evidence",
                {
                    "fields": (
                        ("extended", "extension_reason", "extension_notice_on"),
                        ("paused_since", "paused_seconds"),
                        ("verified_at", "verification_method"),
                        "duplicate_of",
                        "notes",
                        "evidence",
                        "tenant",
                        "version",
                    )
                },
            ),
        )

    @admin.display(description="Due", ordering="due_on")
    def due_display(self, obj):
        today = services.local_date(obj.tenant, timezone.now())
        left = (obj.due_on - today).days
        if obj.status in (Status.COMPLETED, Status.REJECTED, Status.CANCELED):
            return f"{obj.due_on:%Y-%m-%d}"
        css = "drill-status-bad" if left < 0 else ("drill-status-warn" if left <= 7 else "")
        when = f"{-left} days overdue" if left < 0 else f"in {left} days"
        return format_html(
            '{} <span class="drill-status {}">{}</span>', f"{obj.due_on:%Y-%m-%d}", css, when
        )

    @admin.display(description="Allowed next")
    def allowed(self, obj):
        return ", ".join(services.allowed_transitions(obj)) if obj.pk else "—"

    @admin.display(description="Dry run (what would change)")
    def plan_display(self, obj):
        if not obj.plan:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    entry["source"],
                    entry.get("rows", "—"),
                    "delete rows" if entry.get("deletes_rows") else _fields_text(entry),
                    entry.get("error") or entry.get("pending") or "",
                )
                for entry in obj.plan.get("sources", [])
            ),
        )
        taken = f"{obj.planned_at:%Y-%m-%d %H:%M}" if obj.planned_at else ""
        return format_html(
            "<p>{} rows matched; dry run of {}</p><table class='privacy-plan'><thead><tr>"
            "<th>source</th><th>rows</th><th>fields: strategy (values)</th><th>problem</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            obj.plan.get("rows", 0),
            taken,
            rows,
        )

    @admin.display(description="What was done, per source")
    def outcome_display(self, obj):
        if not obj.outcome:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td class='privacy-{}'>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    entry["source"],
                    entry.get("status", ""),
                    entry.get("status", ""),
                    entry.get("rows", 0),
                    _holds_text(entry.get("retained", {})) or entry.get("detail", ""),
                )
                for entry in obj.outcome.get("sources", [])
            ),
        )
        return format_html(
            "<table class='privacy-plan'><thead><tr><th>source</th><th>status</th><th>rows</th>"
            "<th>legal hold / detail</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(description="Dry run an erasure or rectification")
    def dry_run(self, request, queryset):
        for item in queryset:
            try:
                planned = rights.preview(item)
                self.message_user(
                    request,
                    f"#{item.pk}: {planned.plan['rows']} rows in "
                    f"{len(planned.plan['sources'])} sources would change; see the request.",
                )
            except ValidationError as exc:
                self.message_user(request, f"#{item.pk}: {exc.messages[0]}", messages.ERROR)

    @admin.action(description="Send a one-time code to the subject")
    def send_code(self, request, queryset):
        for item in queryset:
            try:
                verification.send_verification_code(item)
                self.message_user(request, f"#{item.pk}: code sent to {item.subject_email}.")
            except (services.InvalidTransition, ValidationError) as exc:
                text = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
                self.message_user(request, f"#{item.pk}: {text}", messages.ERROR)

    def save_model(self, request, obj, form, change):
        if change:
            return  # requests change only through their actions
        created = services.create_request(
            obj.tenant,
            request_type=obj.request_type,
            jurisdiction=obj.jurisdiction,
            subject_email=obj.subject_email,
            subject_external_id=obj.subject_external_id,
            channel=obj.channel,
            notes=obj.notes,
            corrections=obj.corrections or None,
            purposes=obj.purposes or None,
        )
        obj.pk = created.pk


@admin.register(PrivacySettings)
class PrivacySettingsAdmin(PrivacyOnly, TenantScopedAdmin):
    list_display = ("tenant", "default_jurisdiction", "duplicate_lookback_days", "required")
    fields = ("tenant", "default_jurisdiction", "duplicate_lookback_days", "required_purposes")
    readonly_fields = ("version",)

    @admin.display(description="Required consent purposes")
    def required(self, obj):
        return ", ".join(obj.required_purposes or []) or "—"


@admin.register(ConsentRecord)
class ConsentRecordAdmin(PrivacyOnly, TenantScopedAdmin):
    list_display = ("subject", "purpose", "granted", "policy_version", "source", "given_at")
    list_filter = ("purpose", "granted", "policy_version")
    search_fields = ("subject",)

    def has_add_permission(self, request, *args):
        return False  # recorded by applications through the API

    def has_change_permission(self, request, obj=None):
        return False  # append-only


@admin.register(ProcessingActivity)
class ProcessingActivityAdmin(PrivacyOnly, TenantScopedAdmin):
    list_display = ("name", "role", "legal_basis", "updated_at")
    list_filter = ("role", "legal_basis")
    search_fields = ("name", "purposes")
    readonly_fields = ("version",)

    def get_urls(self):
        return [
            path(
                "register/",
                self.admin_site.admin_view(self.register_view),
                name="privacy_processingactivity_register",
            ),
            *super().get_urls(),
        ]

    def register_view(self, request):
        """The printable record of processing activities (GDPR Art. 30)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(
            request,
            "admin/privacy/register.html",
            {
                **self.admin_site.each_context(request),
                "title": "Record of processing activities (GDPR Art. 30)",
                "activities": self.get_queryset(request).order_by("name"),
                "tenant": getattr(request, "tenant", None),
                "printed_at": timezone.now(),
                "opts": self.model._meta,
            },
        )

    def save_model(self, request, obj, form, change):
        if change:
            obj.version = F("version") + 1
        obj.save(audit_action="processing_activity.saved")
        obj.refresh_from_db(fields=["version"])


from apps.privacy import admin_datamap  # noqa: E402, F401  (data map and retention)
