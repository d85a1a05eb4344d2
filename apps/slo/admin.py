"""SLOs in the admin: services (with the per-route page), SLOs with their budget and burn rates,
canary releases with their checks, and the daily reports drawn with server-side SVG charts.
Writes go through apps/slo/services.py; only operators and tenant admins may make them."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.core.admin_mixins import (
    OperatorWrites,
    ReadOnlyAdmin,
    TenantScopedAdmin,
    VersionedForm,
)
from apps.flags.selectors import can_operate
from apps.slo import releases, report_render, selectors, services
from apps.slo.models import SLO, CanaryCheck, DailyReport, Release, Service, SLOSettings


def _percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


class ServiceForm(VersionedForm):
    class Meta:
        model = Service
        fields = ["tenant", "name", *services.SERVICE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        errors = services.clean_service_fields(cleaned)
        for field, message in errors.items():
            self.add_error(field, message)
        return cleaned


@admin.register(Service)
class ServiceAdmin(OperatorWrites, TenantScopedAdmin):
    form = ServiceForm
    list_display = ("name", "display_name", "owner", "slo_count", "last_data_at", "routes_link")
    search_fields = ("name", "display_name", "owner")
    readonly_fields = ("last_data_at", "version")

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(slo_total=Count("slos"))

    @admin.display(description="SLOs", ordering="slo_total")
    def slo_count(self, obj):
        return obj.slo_total

    @admin.display(description="Routes")
    def routes_link(self, obj):
        return format_html(
            '<a href="{}">p95, 5xx, volume per route</a>',
            reverse("admin:slo_service_routes", args=[obj.pk]),
        )

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in services.SERVICE_FIELDS if f in form.cleaned_data}
        if change:
            services.save_service(obj.tenant, data, service=obj)
        else:
            saved = services.save_service(form.cleaned_data["tenant"], {"name": obj.name, **data})
            obj.pk = saved.pk

    def get_urls(self):
        return [
            path(
                "<int:pk>/routes/",
                self.admin_site.admin_view(self.routes_view),
                name="slo_service_routes",
            ),
            *super().get_urls(),
        ]

    def routes_view(self, request, pk: int):
        service = get_object_or_404(self.get_queryset(request), pk=pk)
        table = selectors.route_table(service.pk, service.tenant_id, timezone.now())
        for row in table:
            for period in ("day", "week"):
                cell = row[period]
                cell["error_display"] = _percent(cell["error_ratio"], 3)
                cell["p95_display"] = "—" if cell["p95_ms"] is None else f"{cell['p95_ms']:,.0f} ms"
                cell["requests_display"] = f"{cell['requests']:,}"
        return TemplateResponse(
            request,
            "admin/slo/routes.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Routes of {service.label}",
                "service": service,
                "rows": table,
                "opts": self.model._meta,
            },
        )


class SLOForm(VersionedForm):
    class Meta:
        model = SLO
        fields = ["tenant", "service", "name", *services.SLO_FIELDS]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = SLO(**{k: v for k, v in cleaned.items() if k != "opened_version"})
        candidate.pk = self.instance.pk
        try:
            services.clean_slo(candidate)
        except ValidationError as exc:
            for field, messages_ in exc.message_dict.items():
                if field.startswith("alerting."):  # keep the path: which condition is wrong
                    self.add_error("alerting", [f"{field}: {m}" for m in messages_])
                else:
                    self.add_error(field if field in self.fields else None, messages_)
        return cleaned


@admin.register(SLO)
class SLOAdmin(OperatorWrites, TenantScopedAdmin):
    form = SLOForm
    list_display = (
        "name",
        "service",
        "sli_type",
        "objective_display",
        "sli_display",
        "budget_display",
        "burn_1h",
        "firing_display",
    )
    list_filter = ("sli_type", "window_days", "enabled")
    search_fields = ("name", "display_name", "service__name")
    list_select_related = ("service", "status")
    readonly_fields = ("version", "status_display")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "service" and getattr(request, "tenant", None) is not None:
            kwargs["queryset"] = Service.objects.for_tenant(request.tenant)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Objective", ordering="objective_percent")
    def objective_display(self, obj):
        return f"{obj.objective_percent.normalize():f} % / {obj.window_days} d"

    @admin.display(description="SLI (window)")
    def sli_display(self, obj):
        state = selectors.latest_status(obj)
        if state is None or not state.window_total:
            return "—"
        return f"{state.window_good / state.window_total * 100:.3f} %"

    @admin.display(description="Budget left")
    def budget_display(self, obj):
        state = selectors.latest_status(obj)
        if state is None:
            return "not evaluated yet"
        status = selectors.budget_status(state.budget_remaining)
        return format_html(
            '<span class="slo-status slo-status-{}">{} ({})</span>',
            status,
            _percent(state.budget_remaining),
            status.replace("_", " "),
        )

    @admin.display(description="Burn 1h / 5m")
    def burn_1h(self, obj):
        state = selectors.latest_status(obj)
        if state is None:
            return "—"
        rates = state.burn_rates
        return " / ".join("—" if rates.get(k) is None else f"{rates[k]:.2f}x" for k in ("1h", "5m"))

    @admin.display(description="Firing")
    def firing_display(self, obj):
        state = selectors.latest_status(obj)
        return ", ".join(state.firing) if state and state.firing else "—"

    @admin.display(description="Latest evaluation")
    def status_display(self, obj):
        state = selectors.latest_status(obj)
        if state is None:
            return "not evaluated yet"
        rates = ", ".join(f"{k} {v:.2f}x" for k, v in sorted(state.burn_rates.items()))
        return (
            f"{state.evaluated_at:%Y-%m-%d %H:%M} UTC · budget left "
            f"{_percent(state.budget_remaining)} · burn rates {rates or '—'}"
        )

    def save_model(self, request, obj, form, change):
        services.save_slo(obj)


class CanaryCheckInline(admin.TabularInline):
    model = CanaryCheck
    extra = 0
    can_delete = False
    fields = ("minute", "passed", "failures", "canary", "baseline")
    readonly_fields = fields
    ordering = ("-minute",)

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-minute")


@admin.register(Release)
class ReleaseAdmin(TenantScopedAdmin):
    list_display = (
        "service",
        "version",
        "baseline_version",
        "canary_weight",
        "verdict",
        "started_at",
        "closed_at",
    )
    list_filter = ("verdict", ("closed_at", admin.EmptyFieldListFilter))
    list_select_related = ("service",)
    readonly_fields = (
        "service",
        "version",
        "baseline_version",
        "canary_weight",
        "policy",
        "started_at",
        "closed_at",
        "close_reason",
        "verdict",
        "reasons_display",
        "verdict_figures",
        "verdict_at",
        "verdict_changed_at",
        "created_by",
    )
    exclude = ("verdict_reasons", "version_lock", "tenant")
    inlines = [CanaryCheckInline]
    actions = ["close_releases"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Reasons")
    def reasons_display(self, obj):
        return " ".join(obj.verdict_reasons)

    @admin.action(description="Close the selected releases")
    def close_releases(self, request, queryset):
        if not can_operate(request.user, request):
            raise PermissionDenied
        for release in queryset.filter(closed_at=None).select_related("service"):
            releases.close_release(release, f"closed in the admin by {request.user}")
        messages.success(request, "Closed.")


@admin.register(DailyReport)
class DailyReportAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = ("date", "time_zone", "services", "slo_summary", "generated_at", "sent_at")
    ordering = ("-date",)

    @admin.display(description="Services")
    def services(self, obj):
        return obj.content.get("totals", {}).get("services", 0)

    @admin.display(description="SLOs ok / at risk / exhausted")
    def slo_summary(self, obj):
        totals = obj.content.get("totals", {})
        return (
            f"{totals.get('slos_ok', 0)} / {totals.get('slos_at_risk', 0)} / "
            f"{totals.get('slos_exhausted', 0)}"
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = get_object_or_404(self.get_queryset(request), pk=object_id)
        content = {**report.content, "generated_at": report.generated_at.isoformat(), "url": ""}
        return TemplateResponse(
            request,
            "admin/slo/daily_report.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Daily SLO report {report.date:%Y-%m-%d}",
                "report": report_render.display(content),
                "charts": report_render.charts(content),
                "opts": self.model._meta,
                "evidence": report.evidence,
            },
        )


@admin.register(SLOSettings)
class SLOSettingsAdmin(OperatorWrites, TenantScopedAdmin):
    list_display = ("tenant", "auto_create_services", "report_enabled", "report_hour")
