"""Flags in the admin: a per-environment toggle column, the red kill-switch button (with a
confirmation page), per-environment rule editing with validation messages, segments, and
environment keys whose secret is shown once. Every write goes through apps/flags/services.py."""

from __future__ import annotations

import json
import threading

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin_mixins import TenantScopedAdmin, VersionedForm, ask_reason_then
from apps.flags import changes as flag_changes
from apps.flags import preview as flag_preview
from apps.flags import rollouts, selectors, services
from apps.flags import rules as rule_logic
from apps.flags.models import (
    ChangeStatus,
    Environment,
    EnvironmentKey,
    Flag,
    FlagChange,
    FlagState,
    RolloutPlan,
    Segment,
)
from apps.tenancy.selectors import displayed_tenant


def _operator_or_403(request) -> None:
    if not selectors.can_operate(request.user, request):
        raise PermissionDenied("Only an operator or tenant admin of this tenant changes flags.")


class FlagStateForm(VersionedForm):
    class Meta:
        model = FlagState
        fields = ["enabled", "default_variant", "rules", "fallthrough"]

    def clean(self):
        cleaned = super().clean()
        state = self.instance
        if state.pk is None or self.errors:
            return cleaned
        changes = {name: cleaned.get(name) for name in services.STATE_FIELDS if name in self.fields}
        changes["rules"] = changes.get("rules") or []
        changes["fallthrough"] = changes.get("fallthrough") or {}
        try:
            services.check_state_change(state, changes)
        except services.FlagError as exc:
            field_errors: dict[str, list[str]] = {}
            for path_, problems in exc.errors.items():
                field = path_.split("[")[0].split(".")[0]
                field = field if field in self.fields else "rules"
                field_errors.setdefault(field, []).extend(f"{path_}: {p}" for p in problems)
            raise ValidationError(field_errors) from exc
        return cleaned


class FlagStateInline(admin.TabularInline):
    model = FlagState
    form = FlagStateForm
    fk_name = "flag"
    extra = 0
    can_delete = False
    fields = [
        "environment",
        "enabled",
        "default_variant",
        "rules",
        "fallthrough",
        "killed_at",
        "opened_version",
    ]
    readonly_fields = ["environment", "killed_at"]
    ordering = ["environment__sort_order"]

    def has_add_permission(self, request, obj=None):
        return False


FLAG_FORM_FIELDS = [
    "tenant",
    "key",
    "name",
    "description",
    "value_type",
    "variants",
    "kind",
    "owner",
    "tags",
    "archived",
]


class FlagForm(VersionedForm):
    class Meta:
        model = Flag
        fields = FLAG_FORM_FIELDS

    def clean(self):
        cleaned = super().clean()
        value_type = cleaned.get("value_type") or self.instance.value_type
        variants = cleaned.get("variants")
        if self.errors or variants is None:
            return cleaned
        try:
            rule_logic.validate_variants(value_type, variants)
            if self.instance.pk is not None:
                services.check_variants_still_served(self.instance, variants)
        except (rule_logic.RuleError, services.FlagError) as exc:
            raise ValidationError(
                {"variants": [f"{k}: {v[0]}" for k, v in exc.errors.items()]}
            ) from exc
        return cleaned


class StaleFilter(admin.SimpleListFilter):
    title = "staleness"
    parameter_name = "stale"

    def lookups(self, request, model_admin):
        return [("yes", "potentially stale")]

    def queryset(self, request, queryset):
        tenant = displayed_tenant(request)
        if self.value() != "yes" or tenant is None:
            return queryset
        return queryset.filter(pk__in=[flag.pk for flag, _ in selectors.stale_flags(tenant)])


_local = threading.local()


@admin.register(Flag)
class FlagAdmin(TenantScopedAdmin):
    form = FlagForm
    list_display = ["key", "name", "kind", "value_type", "toggles", "owner", "archived"]
    list_filter = [StaleFilter, "kind", "value_type", "archived"]
    search_fields = ["key", "name", "description", "owner"]
    readonly_fields = ["version", "created_at", "updated_at", "kill_button"]
    fields = [*FLAG_FORM_FIELDS, "version", "kill_button", "opened_version"]
    inlines = [FlagStateInline]

    def get_queryset(self, request):
        return selectors.flags_with_states(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        fixed = ["tenant", "key", "value_type"] if obj is not None else []
        return [*self.readonly_fields, *fixed]

    def get_urls(self):
        return [
            path(
                "<int:pk>/toggle/<slug:environment>/",
                self.admin_site.admin_view(self.toggle_view),
                name="flags_flag_toggle",
            ),
            path(
                "<int:pk>/kill/",
                self.admin_site.admin_view(self.kill_view),
                name="flags_flag_kill",
            ),
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="flags_flag_preview",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="environments")
    def toggles(self, obj: Flag):
        return format_html_join(
            " ",
            '<form method="post" action="{}" class="flag-toggle">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<button type="submit" class="toggle {}" title="turn {} in {}">{}: {}</button></form>',
            (
                (
                    reverse("admin:flags_flag_toggle", args=[obj.pk, state.environment.key]),
                    _local.csrf_token,
                    "on" if state.enabled else ("killed" if state.killed_at else "off"),
                    "off" if state.enabled else "on",
                    state.environment.key,
                    state.environment.key,
                    "on" if state.enabled else ("killed" if state.killed_at else "off"),
                )
                for state in obj.states.all()
            ),
        )

    def changelist_view(self, request, extra_context=None):
        _local.csrf_token = get_token(request)
        return super().changelist_view(request, extra_context)

    @admin.display(description="operations")
    def kill_button(self, obj: Flag):
        if obj.pk is None:
            return "-"
        return format_html(
            '<a class="button kill-switch" href="{}">Kill switch: turn off everywhere…</a> '
            '<a class="button preview-link" href="{}">Evaluation preview</a>',
            reverse("admin:flags_flag_kill", args=[obj.pk]),
            reverse("admin:flags_flag_preview", args=[obj.pk]),
        )

    def preview_view(self, request, pk: int):
        """What does this context get, and why? Read-only: evaluates as OFREP would."""
        flag = get_object_or_404(self.get_queryset(request), pk=pk)
        environments = list(selectors.environments(flag.tenant_id))
        chosen = request.GET.get("environment") or (environments[-1].key if environments else "")
        context_text = request.GET.get("context") or '{"targetingKey": "user-42"}'
        result, problem, rules_shown = None, None, []
        if "context" in request.GET:
            try:
                context = json.loads(context_text)
                if not isinstance(context, dict):
                    raise ValueError("the context must be a JSON object")
            except ValueError as exc:
                problem = f"Context: {exc}"
            else:
                state = get_object_or_404(
                    FlagState.objects.select_related("flag", "environment"),
                    flag=flag,
                    environment__key=chosen,
                )
                result = flag_preview.preview(state, context)
                rules_shown = list(
                    zip([json.dumps(r) for r in state.rules], result.rule_results, strict=True)
                )
        return TemplateResponse(
            request,
            "admin/flags/preview.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Evaluation preview: {flag.key}",
                "flag": flag,
                "environments": environments,
                "chosen": chosen,
                "context_text": context_text,
                "result": result,
                "result_value": json.dumps(result.value) if result else "",
                "rules": rules_shown,
                "problem": problem,
                "opts": self.model._meta,
            },
        )

    def toggle_view(self, request, pk: int, environment: str):
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:flags_flag_changelist"))
        _operator_or_403(request)
        flag = get_object_or_404(self.get_queryset(request), pk=pk)
        state = get_object_or_404(
            FlagState.objects.for_tenant(flag.tenant_id).select_related("flag"),
            flag=flag,
            environment__key=environment,
        )
        wanted = "off" if state.enabled else "on"
        try:
            outcome = flag_changes.propose_state_change(
                state, changes={"enabled": not state.enabled}, expected_version=state.version
            )
        except services.FlagError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            if isinstance(outcome, FlagChange):
                self.message_user(
                    request,
                    f"Change request #{outcome.pk} to turn {state.flag.key} {wanted} in "
                    f"{environment} waits for another operator's approval.",
                    messages.WARNING,
                )
            else:
                self.message_user(
                    request, f"{state.flag.key} is now {wanted} in {environment}.", messages.SUCCESS
                )
        return HttpResponseRedirect(reverse("admin:flags_flag_changelist"))

    def kill_view(self, request, pk: int):
        flag = get_object_or_404(self.get_queryset(request), pk=pk)
        environments = list(selectors.environments(flag.tenant_id))
        if request.method == "POST":
            _operator_or_403(request)
            chosen = [e for e in environments if e.key in request.POST.getlist("environment")]
            if not chosen:
                self.message_user(request, "Choose at least one environment.", messages.ERROR)
            else:
                changed, waiting = flag_changes.kill_or_request(flag, chosen)
                immediate = [
                    e.key for e in chosen if e.pk not in {c.state.environment_id for c in waiting}
                ]
                self.message_user(
                    request,
                    f"Kill switch pulled: {flag.key} is off in "
                    f"{', '.join(immediate)} ({len(changed)} changed). "
                    "Every evaluation path reflects it within seconds.",
                    messages.WARNING,
                )
                for change in waiting:
                    self.message_user(
                        request,
                        f"Change request #{change.pk} waits for approval: this environment "
                        "makes even the kill switch wait.",
                        messages.ERROR,
                    )
                return HttpResponseRedirect(reverse("admin:flags_flag_change", args=[pk]))
        return TemplateResponse(
            request,
            "admin/flags/kill_confirm.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Kill switch: {flag.key}",
                "flag": flag,
                "environments": environments,
                "opts": self.model._meta,
            },
        )

    def save_model(self, request, obj, form, change):
        _operator_or_403(request)
        try:
            if change:
                updated = services.update_flag(
                    obj,
                    changes={
                        name: form.cleaned_data[name]
                        for name in form.changed_data
                        if name != "opened_version"
                    },
                    expected_version=form.cleaned_data.get("opened_version") or obj.version,
                )
                obj.version = updated.version
            else:
                created = services.create_flag(
                    form.cleaned_data["tenant"],
                    **{
                        name: form.cleaned_data[name]
                        for name in FLAG_FORM_FIELDS
                        if name not in ("tenant", "archived")
                    },
                )
                obj.pk = created.pk
        except services.FlagError as exc:
            raise ValidationError(exc.errors) from exc

    def save_formset(self, request, form, formset, change):
        """States change through the service (validation, version, publish), not formset.save."""
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed():
                continue
            state = inline_form.instance
            changes = {
                name: inline_form.cleaned_data[name]
                for name in inline_form.changed_data
                if name != "opened_version"
            }
            if not changes:
                continue
            outcome = flag_changes.propose_state_change(
                state,
                changes=changes,
                expected_version=inline_form.cleaned_data.get("opened_version")
                or FlagState.objects.get(pk=state.pk).version,
            )
            if isinstance(outcome, FlagChange):
                self.message_user(
                    request,
                    f"{state.environment.key}: change request #{outcome.pk} waits for another "
                    "operator's approval.",
                    messages.WARNING,
                )
            else:
                formset.changed_objects.append((state, inline_form.changed_data))

    def has_delete_permission(self, request, obj=None):
        return False  # archive instead: evaluations of a deleted key would silently default


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["tenant", "key", "name", "description", "conditions"]

    def clean_conditions(self):
        conditions = self.cleaned_data["conditions"]
        try:
            rule_logic.validate_conditions(conditions)
        except rule_logic.RuleError as exc:
            raise ValidationError([f"{k}: {v[0]}" for k, v in exc.errors.items()]) from exc
        return conditions


@admin.register(Segment)
class SegmentAdmin(TenantScopedAdmin):
    form = SegmentForm
    list_display = ["key", "name", "summary", "version", "updated_at"]
    search_fields = ["key", "name", "description"]
    readonly_fields = ["version", "updated_at", "used_by"]

    @admin.display(description="conditions")
    def summary(self, obj: Segment) -> str:
        return json.dumps(obj.conditions)[:120]

    @admin.display(description="used by")
    def used_by(self, obj: Segment) -> str:
        return ", ".join(services.segment_users(obj)) or "no flag yet"

    def save_model(self, request, obj, form, change):
        _operator_or_403(request)
        if change:
            updated = services.update_segment(
                obj,
                changes={
                    name: form.cleaned_data[name]
                    for name in form.changed_data
                    if name in ("name", "description", "conditions")
                },
                expected_version=Segment.objects.get(pk=obj.pk).version,
            )
            obj.version = updated.version
        else:
            created = services.create_segment(
                form.cleaned_data["tenant"],
                key=obj.key,
                name=obj.name,
                description=obj.description,
                conditions=obj.conditions,
            )
            obj.pk = created.pk

    def delete_model(self, request, obj):
        _operator_or_403(request)
        try:
            services.delete_segment(obj)
        except services.InUse as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_queryset(self, request, queryset):
        """ "Delete selected" goes through the same checks as deleting one."""
        for segment in queryset:
            self.delete_model(request, segment)


@admin.register(Environment)
class EnvironmentAdmin(TenantScopedAdmin):
    list_display = [
        "key",
        "name",
        "sort_order",
        "requires_approval",
        "kill_switch_exempt",
        "config_version",
        "tenant",
    ]
    readonly_fields = ["config_version", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # The key names the environment in flagd sync URLs and evaluation metadata.
        return [*self.readonly_fields, "key"] if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Approval settings belong to tenant admins; every change reaches the evaluators."""
        if not selectors.can_administer(request.user, request):
            raise PermissionDenied("Only a tenant admin changes environments.")
        if not change:
            created = services.create_environment(
                form.cleaned_data["tenant"],
                key=obj.key,
                name=obj.name,
                sort_order=obj.sort_order,
                requires_approval=obj.requires_approval,
                kill_switch_exempt=obj.kill_switch_exempt,
            )
            obj.pk = created.pk
            return
        with transaction.atomic():
            obj.save(audit_action="flag_environment.updated")
            services._touch([obj.pk])


class EnvironmentKeyForm(forms.ModelForm):
    class Meta:
        model = EnvironmentKey
        fields = ["tenant", "environment", "name"]


@admin.register(EnvironmentKey)
class EnvironmentKeyAdmin(TenantScopedAdmin):
    form = EnvironmentKeyForm
    list_display = ["name", "environment", "prefix", "created_at", "revoked_at"]
    list_filter = ["environment"]
    readonly_fields = ["prefix", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None):
        return obj is None

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the audit trail keeps who had which key

    def save_model(self, request, obj, form, change):
        _operator_or_403(request)
        key, plaintext = services.create_environment_key(
            form.cleaned_data["environment"], name=obj.name, created_by=request.user
        )
        obj.pk = key.pk
        self.message_user(
            request,
            f"Key for {key.environment.key}: {plaintext}  (shown once: copy it now)",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        _operator_or_403(request)
        for key in queryset:
            services.revoke_environment_key(key)
        self.message_user(request, "Revoked.", messages.SUCCESS)


class _StateColumns:
    """List columns for rows that belong to one flag in one environment."""

    @admin.display(description="flag")
    def flag(self, obj) -> str:
        return obj.state.flag.key

    @admin.display(description="environment")
    def environment(self, obj) -> str:
        return obj.state.environment.key


@admin.register(FlagChange)
class FlagChangeAdmin(_StateColumns, TenantScopedAdmin):
    """The change-request queue (pending first) and scheduled changes."""

    list_display = [
        "id",
        "status",
        "flag",
        "environment",
        "summary",
        "apply_at",
        "requested_by_label",
        "decided_by_label",
        "error",
    ]
    list_filter = ["status"]
    list_select_related = ["state__flag", "state__environment"]
    readonly_fields = [f.name for f in FlagChange._meta.fields]
    actions = ["approve", "reject", "cancel"]

    def changelist_view(self, request, extra_context=None):
        if not request.GET and request.method == "GET":
            request.GET = request.GET.copy()
            request.GET["status__exact"] = ChangeStatus.PENDING
            request.META["QUERY_STRING"] = request.GET.urlencode()
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="change")
    def summary(self, obj: FlagChange) -> str:
        return json.dumps(obj.changes)[:120]

    def _decide(self, request, queryset, label: str, decide) -> None:
        _operator_or_403(request)
        for change in queryset:
            try:
                decide(change)
                self.message_user(request, f"{label} change #{change.pk}.", messages.SUCCESS)
            except (
                flag_changes.InvalidTransition,
                flag_changes.FourEyesViolation,
                services.FlagError,
            ) as exc:
                self.message_user(request, f"#{change.pk}: {exc}", messages.ERROR)

    @admin.action(description="Approve selected changes (four eyes)")
    def approve(self, request, queryset):
        self._decide(request, queryset, "Approved", flag_changes.approve_change)

    @admin.action(description="Reject selected changes (asks for a reason)")
    def reject(self, request, queryset):
        return ask_reason_then(
            self,
            request,
            queryset,
            action="reject",
            title="Reject change requests",
            describe=lambda c: f"{c.state.flag.key} in {c.state.environment.key}: {c.changes}",
            apply=lambda reason: self._decide(
                request, queryset, "Rejected", lambda c: flag_changes.reject_change(c, reason)
            ),
        )

    @admin.action(description="Cancel selected changes")
    def cancel(self, request, queryset):
        self._decide(request, queryset, "Canceled", flag_changes.cancel_change)


@admin.register(RolloutPlan)
class RolloutPlanAdmin(_StateColumns, TenantScopedAdmin):
    """Rollouts with their current stage; advance, halt, resume from the list."""

    list_display = [
        "id",
        "flag",
        "environment",
        "stage",
        "status",
        "auto_advance",
        "stage_started_at",
        "status_reason",
    ]
    list_filter = ["status", "auto_advance"]
    list_select_related = ["state__flag", "state__environment"]
    readonly_fields = [f.name for f in RolloutPlan._meta.fields]
    actions = ["advance", "halt", "resume"]

    def has_add_permission(self, request):
        return False  # started from the API (POST …/environments/{env}/rollout)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="stage")
    def stage(self, obj: RolloutPlan):
        return format_html_join(
            " → ",
            '<span class="{}">{} %</span>',
            (
                ("current-stage" if index == obj.stage_index else "", percentage)
                for index, percentage in enumerate(obj.stages)
            ),
        )

    def _act(self, request, queryset, label: str, act) -> None:
        _operator_or_403(request)
        for plan in queryset:
            try:
                act(plan)
                self.message_user(request, f"{label} rollout #{plan.pk}.", messages.SUCCESS)
            except rollouts.RolloutError as exc:
                self.message_user(request, f"#{plan.pk}: {exc}", messages.ERROR)

    @admin.action(description="Advance to the next stage (dwell time applies)")
    def advance(self, request, queryset):
        self._act(request, queryset, "Advanced", rollouts.advance)

    @admin.action(description="Halt and step back one stage")
    def halt(self, request, queryset):
        reason = f"halted by {request.user.get_username()} in the admin"
        self._act(request, queryset, "Halted", lambda p: rollouts.halt(p, reason))

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self._act(request, queryset, "Resumed", rollouts.resume)
