"""The compliance gate in the admin: the catalog (superusers edit it; every change is audited),
each tenant's gate settings and tool mappings, and read-only runs, pull requests and violations.
The dashboard itself is `apps.compliance.views.dashboard`, at /admin/compliance/."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from apps.compliance import services
from apps.compliance.ingest.mapping import validate_pattern
from apps.compliance.models import (
    CheckRun,
    ComplianceSettings,
    PullRequest,
    Rule,
    ToolRuleMapping,
    UnmappedResults,
    Violation,
)
from apps.core.admin_mixins import ReadOnlyAdmin, TenantScopedAdmin


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    """The catalog is global: only superusers change it, tenants read it."""

    list_display = ["id", "name", "tier", "category", "enabled", "policy_file", "updated_at"]
    list_filter = ["tier", "category", "enabled"]
    search_fields = ["id", "name", "slug"]
    readonly_fields = ["id", "updated_at", "runbook"]
    fields = [
        "id",
        "name",
        "slug",
        "description",
        "tier",
        "category",
        "policy_file",
        "enabled",
        "runbook",
        "updated_at",
    ]

    @admin.display(description="runbook")
    def runbook(self, obj: Rule) -> str:
        return obj.runbook_path

    def has_add_permission(self, request):
        return False  # rules come from the catalog file (manage.py load_rules)

    def has_delete_permission(self, request, obj=None):
        return False  # never deleted: disable instead

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        action = "rule.tier_changed" if "tier" in form.changed_data else "rule.updated"
        obj.save(audit_action=action)


class ComplianceSettingsForm(forms.ModelForm):
    class Meta:
        model = ComplianceSettings
        fields = [
            "tenant",
            "weight_block",
            "weight_override",
            "weight_warning",
            "pass_threshold",
            "unmapped_results",
            "catch_all_rule",
        ]

    def clean(self):
        data = super().clean()
        if data.get("unmapped_results") == UnmappedResults.CATCH_ALL and not data.get(
            "catch_all_rule"
        ):
            raise ValidationError({"catch_all_rule": "Choose the rule unmapped results go to."})
        return data


@admin.register(ComplianceSettings)
class ComplianceSettingsAdmin(TenantScopedAdmin):
    form = ComplianceSettingsForm
    list_display = [
        "tenant",
        "pass_threshold",
        "weight_block",
        "weight_override",
        "weight_warning",
        "unmapped_results",
        "catch_all_rule",
    ]

    def save_model(self, request, obj, form, change):
        services.save_settings(obj)


class ToolRuleMappingForm(forms.ModelForm):
    class Meta:
        model = ToolRuleMapping
        fields = ["tenant", "tool", "pattern", "rule", "note"]

    def clean_pattern(self):
        pattern = self.cleaned_data["pattern"]
        problem = validate_pattern(pattern)
        if problem:
            raise ValidationError(problem)
        return pattern


@admin.register(ToolRuleMapping)
class ToolRuleMappingAdmin(TenantScopedAdmin):
    form = ToolRuleMappingForm
    list_display = ["tool", "pattern", "rule", "note", "tenant"]
    list_filter = ["tool", "rule"]
    search_fields = ["tool", "pattern", "note"]


def _decision_badge(decision: str):
    return format_html('<span class="decision-badge decision-{}">{}</span>', decision, decision)


@admin.register(PullRequest)
class PullRequestAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = ["__str__", "decision_badge", "score", "head_sha", "last_run_at", "tenant"]
    list_filter = ["decision"]
    search_fields = ["repository", "number", "head_sha"]

    @admin.display(description="decision", ordering="decision")
    def decision_badge(self, obj: PullRequest):
        return _decision_badge(obj.decision)


@admin.register(CheckRun)
class CheckRunAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = [
        "__str__",
        "pull_request",
        "source_format",
        "result_count",
        "violation_count",
        "new_violation_count",
        "resolved_violation_count",
        "score",
        "decision",
        "received_at",
    ]
    list_filter = ["source_format", "decision", "tool"]
    search_fields = ["commit_sha", "tool", "pull_request__repository"]
    list_select_related = ["pull_request"]
    exclude = ["response"]
    date_hierarchy = "received_at"


@admin.register(Violation)
class ViolationAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = [
        "rule",
        "severity",
        "status",
        "pull_request",
        "file_path",
        "line",
        "short_message",
        "last_seen_at",
    ]
    list_filter = ["status", "severity", "rule", "tool"]
    search_fields = ["file_path", "message", "fingerprint", "pull_request__repository"]
    list_select_related = ["pull_request", "rule"]

    @admin.display(description="message")
    def short_message(self, obj: Violation) -> str:
        return obj.message[:120]
