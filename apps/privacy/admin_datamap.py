"""The data map and retention in the admin: external databases (DSN write-only), their tables
(checked against the live table on save), webhook connectors (a generated secret is shown once),
erasure records and restrictions (read-only; restrictions can be lifted), retention policies and
runs. Writes go through apps/privacy/datamap.py and apps/privacy/retention.py."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import construct_instance
from django.utils.html import format_html

from apps.core.admin_mixins import ReadOnlyAdmin, TenantScopedAdmin, ask_reason_then
from apps.privacy import datamap, restrictions, retention
from apps.privacy.admin import PrivacyOnly
from apps.privacy.models import (
    ErasureRecord,
    ExternalDatabase,
    ExternalTable,
    RestrictionKind,
    RetentionPolicy,
    RetentionRun,
    SubjectRestriction,
    WebhookConnector,
)
from apps.tenancy.roles import Role
from apps.tenancy.selectors import has_role_in_active_tenant


def _form_errors(form: forms.ModelForm, exc: ValidationError) -> None:
    """Service errors onto the form: known fields by name, the rest (columns.x) on top."""
    for key, messages_ in exc.message_dict.items():
        field = key if key in form.fields else None
        for message in messages_:
            form.add_error(field, f"{key}: {message}" if field is None else message)


class DatabaseForm(forms.ModelForm):
    dsn = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="postgresql://user:password@host:5432/dbname (stored encrypted; leave empty "
        "to keep the current one). Checked by connecting; never the portal's own database.",
    )

    class Meta:
        model = ExternalDatabase
        fields = ("tenant", "name", "enabled")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        construct_instance(self, self.instance, self.Meta.fields)
        try:
            self.normalised_dsn = datamap.clean_database(self.instance, dsn=cleaned.get("dsn"))
        except ValidationError as exc:
            _form_errors(self, exc)
        return cleaned


@admin.register(ExternalDatabase)
class ExternalDatabaseAdmin(PrivacyOnly, TenantScopedAdmin):
    """A DSN reaches a database with the DSN's own rights: declaring one is for tenant admins."""

    form = DatabaseForm
    list_display = ("name", "dsn_hint", "enabled", "tables")
    readonly_fields = ("dsn_hint", "version")

    def _tenant_admin(self, request) -> bool:
        return has_role_in_active_tenant(request.user, request, (Role.TENANT_ADMIN,))

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._tenant_admin(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._tenant_admin(request)

    @admin.display(description="Tables")
    def tables(self, obj):
        return ", ".join(t.table for t in obj.tables.all()) or "—"

    def save_model(self, request, obj, form, change):
        datamap.save_database(obj, dsn=form.cleaned_data.get("dsn"))


class TableForm(forms.ModelForm):
    class Meta:
        model = ExternalTable
        fields = (
            "tenant",
            "database",
            "table",
            "key_column",
            "subject_column",
            "subject_kind",
            "columns",
            "enabled",
        )

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        construct_instance(self, self.instance, self.Meta.fields)
        try:
            datamap.clean_table(self.instance)
        except ValidationError as exc:
            _form_errors(self, exc)
        return cleaned


@admin.register(ExternalTable)
class ExternalTableAdmin(PrivacyOnly, TenantScopedAdmin):
    form = TableForm
    list_display = ("__str__", "subject_column", "subject_kind", "strategies", "enabled")
    list_filter = ("database", "enabled")

    @admin.display(description="Masking")
    def strategies(self, obj):
        parts = []
        for column, raw in sorted(obj.columns.items()):
            hold = " (legal hold)" if raw.get("legal_hold") else ""
            parts.append(f"{column}: {raw.get('strategy', 'keep')}{hold}")
        return "; ".join(parts)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "database" and getattr(request, "tenant", None) is not None:
            kwargs["queryset"] = ExternalDatabase.objects.for_tenant(request.tenant)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        datamap.save_table(obj)


class ConnectorForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The signing secret (16+ characters). Leave empty: a new connector gets a "
        "generated one, shown once; an existing one keeps its own.",
    )

    class Meta:
        model = WebhookConnector
        fields = ("tenant", "name", "url", "timeout_seconds", "enabled")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        construct_instance(self, self.instance, self.Meta.fields)
        try:
            datamap.clean_connector(self.instance, secret=cleaned.get("secret"))
        except ValidationError as exc:
            _form_errors(self, exc)
        return cleaned


@admin.register(WebhookConnector)
class WebhookConnectorAdmin(PrivacyOnly, TenantScopedAdmin):
    form = ConnectorForm
    list_display = ("name", "url", "secret_hint", "enabled")
    readonly_fields = ("secret_hint", "version")

    def save_model(self, request, obj, form, change):
        generated = datamap.save_connector(obj, secret=form.cleaned_data.get("secret"))
        if generated:
            self.message_user(
                request,
                f"Signing secret for {obj.name} (shown once, store it in the connected system): "
                f"{generated}",
                messages.WARNING,
            )


@admin.register(ErasureRecord)
class ErasureRecordAdmin(PrivacyOnly, TenantScopedAdmin, ReadOnlyAdmin):
    list_display = ("executed_at", "request", "source", "status", "rows", "held", "replayed_at")
    list_filter = ("status", "source")

    @admin.display(description="Legal holds")
    def held(self, obj):
        return ", ".join(sorted(obj.retained)) or "—"


@admin.register(SubjectRestriction)
class SubjectRestrictionAdmin(PrivacyOnly, TenantScopedAdmin, ReadOnlyAdmin):
    list_display = ("since", "kind", "purpose", "request", "subject_key_short", "lifted_at")
    list_filter = ("kind", "purpose", ("lifted_at", admin.EmptyFieldListFilter))
    actions = ["lift"]

    @admin.display(description="Subject (keyed hash)")
    def subject_key_short(self, obj):
        return f"{obj.subject_key[:12]}…"

    @admin.action(description="Lift (tell the subject first)")
    def lift(self, request, queryset):
        liftable = queryset.filter(lifted_at__isnull=True).exclude(kind=RestrictionKind.ERASURE)

        def apply(reason: str) -> None:
            for item in liftable:
                restrictions.lift_restriction(item.tenant, item.pk, note=reason)
            self.message_user(request, f"{liftable.count()} restriction(s) lifted.")

        return ask_reason_then(
            self,
            request,
            liftable,
            action="lift",
            title="Lift restrictions",
            describe=lambda obj: f"{obj.kind} of {obj.purpose} since {obj.since:%Y-%m-%d}",
            apply=apply,
        )

    def has_change_permission(self, request, obj=None):
        return False


class PolicyForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ("tenant", "category", "description", "model", "age_field", "keep", "action")

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            construct_instance(self, self.instance, self.Meta.fields)
            try:
                retention.clean_policy(self.instance)
            except ValidationError as exc:
                _form_errors(self, exc)
        return cleaned


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(PrivacyOnly, TenantScopedAdmin):
    form = PolicyForm
    list_display = ("category", "model", "age_field", "keep", "action", "enabled")
    list_editable = ("enabled",)
    readonly_fields = ("version",)
    actions = ["dry_run"]

    def save_model(self, request, obj, form, change):
        retention.save_policy(obj)

    @admin.action(description="Dry run retention now (counts, changes nothing)")
    def dry_run(self, request, queryset):
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            self.message_user(request, "Choose a tenant first.", messages.ERROR)
            return
        run = retention.enforce(tenant, dry_run=True)
        counts = ", ".join(f"{k}: {v['rows']}" for k, v in sorted(run.report["policies"].items()))
        self.message_user(request, f"Would delete: {counts}")


@admin.register(RetentionRun)
class RetentionRunAdmin(PrivacyOnly, TenantScopedAdmin, ReadOnlyAdmin):
    list_display = ("started_at", "local_date", "dry_run", "status", "rows", "finished_at")
    list_filter = ("status", "dry_run")
    readonly_fields = ("report_display",)
    fields = (
        "local_date",
        "dry_run",
        "status",
        "started_at",
        "finished_at",
        "evidence",
        "report_display",
    )

    @admin.display(description="Rows")
    def rows(self, obj):
        return sum(entry["rows"] for entry in obj.report.get("policies", {}).values())

    @admin.display(description="Report")
    def report_display(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.report, indent=2, sort_keys=True))
