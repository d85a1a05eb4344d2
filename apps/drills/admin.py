"""Drills in the admin: drills with their last result, next run and RTO trend (server-side SVG),
a "run now" action that queues a Celery task, runs with phases and per-table verification, and
backups. Writes go through apps/drills/services.py; only operators and tenant admins make them."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.compliance.charts import bar_chart
from apps.core.admin_mixins import (
    OperatorWrites,
    ReadOnlyAdmin,
    TenantScopedAdmin,
    VersionedForm,
)
from apps.drills import selectors, services
from apps.drills.models import Backup, Drill, DrillRun, RunStatus
from apps.flags.selectors import can_operate

STATUS_CLASS = {
    RunStatus.PASSED: "ok",
    RunStatus.FAILED: "bad",
    RunStatus.REFUSED: "warn",
    RunStatus.CANCELED: "warn",
    RunStatus.RUNNING: "idle",
    RunStatus.QUEUED: "idle",
}


def _status_badge(status: str) -> str:
    return format_html(
        '<span class="drill-status drill-status-{}">{}</span>', STATUS_CLASS.get(status, ""), status
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f} s" if value < 120 else f"{value / 60:,.1f} min"


class DrillForm(VersionedForm):
    dsn = forms.CharField(
        label="DSN",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="External target only: postgresql://user:password@host:5432/dbname. Stored "
        "encrypted and never shown again; leave blank to keep the stored one.",
    )

    class Meta:
        model = Drill
        fields = ["tenant", "name", "kind", "target", "dsn", *services.EDITABLE[3:]]

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = Drill(
            **{k: v for k, v in cleaned.items() if k not in ("opened_version", "dsn")}
        )
        candidate.pk = self.instance.pk
        candidate.dsn_ciphertext = self.instance.dsn_ciphertext
        user = getattr(self.request, "user", None)
        try:
            services.clean_drill(
                candidate,
                dsn=cleaned.get("dsn") or None,
                may_target_portal=bool(user and user.is_superuser),
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return cleaned


@admin.register(Drill)
class DrillAdmin(OperatorWrites, TenantScopedAdmin):
    form = DrillForm
    list_display = (
        "name",
        "kind",
        "target_display",
        "last_result",
        "last_rto",
        "backup_display",
        "next_run",
        "enabled",
    )
    list_filter = ("kind", "target", "enabled")
    search_fields = ("name",)
    readonly_fields = ("dsn_hint", "version", "next_run", "rto_trend", "recent_runs")
    actions = ["run_now"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class RequestForm(form):
            def __init__(self, *args, **inner):
                super().__init__(*args, request=request, **inner)

        return RequestForm

    def get_fieldsets(self, request, obj=None):
        main = ["tenant", "name", "kind", "target", "dsn", "dsn_hint"]
        fieldsets = [
            (None, {"fields": main}),
            (
                "Schedule and targets",
                {
                    "fields": [
                        "schedule",
                        "time_zone",
                        "next_run",
                        "rto_target_seconds",
                        "rpo_target_seconds",
                        "use_latest_backup",
                        "rollback_to",
                        "enabled",
                        "version",
                    ]
                },
            ),
        ]
        if obj is not None:
            fieldsets.append(("Results", {"fields": ["rto_trend", "recent_runs"]}))
        return fieldsets

    def get_queryset(self, request):
        return selectors.with_last_run(super().get_queryset(request))

    @admin.display(description="Target")
    def target_display(self, obj):
        return obj.target_label

    @admin.display(description="Last result")
    def last_result(self, obj):
        if obj.last_run_id is None:
            return "never run"
        return format_html(
            '{} <a href="{}">{}</a>',
            _status_badge(obj.last_status),
            reverse("admin:drills_drillrun_change", args=[obj.last_run_id]),
            f"{obj.last_finished_at:%Y-%m-%d %H:%M}",
        )

    @admin.display(description="RTO (target)")
    def last_rto(self, obj):
        return f"{_seconds(obj.last_rto)} ({_seconds(obj.rto_target_seconds)})"

    @admin.display(description="Backup used")
    def backup_display(self, obj):
        if obj.last_rpo is None:
            return "—"
        return f"{(obj.last_backup_bytes or 0) / 1e6:,.1f} MB, RPO {_seconds(obj.last_rpo)}"

    @admin.display(description="Next run")
    def next_run(self, obj):
        if obj.pk is None:
            return "—"
        at = services.next_run_at(obj)
        return f"{at:%Y-%m-%d %H:%M %Z}" if at else "disabled"

    @admin.display(description="RTO trend")
    def rto_trend(self, obj):
        points = selectors.rto_trend(obj)
        if not points:
            return "no runs yet"
        target = obj.rto_target_seconds
        labels = {}
        bars = []
        for at, rto, _passed in points:
            label = f"{at:%Y-%m-%d %H:%M}"
            labels[label] = (
                "drill-rto-met" if rto is not None and rto <= target else "drill-rto-missed"
            )
            bars.append((label, rto))
        return bar_chart(
            bars,
            title=f"RTO per run in seconds, oldest first (target {target:,} s)",
            width=640,
            height=24 * len(bars) + 40,
            max_bars=len(bars),
            css_class_for=lambda label: labels.get(label, ""),
        )

    @admin.display(description="Recent runs")
    def recent_runs(self, obj):
        runs = obj.runs.order_by("-created_at")[:10]
        if not runs:
            return "none"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:drills_drillrun_change", args=[run.pk]),
                    run.pk,
                    _status_badge(run.status),
                    run.trigger,
                    f"{run.created_at:%Y-%m-%d %H:%M}",
                    _seconds(run.rto_seconds),
                    len(run.mismatches),
                )
                for run in runs
            ),
        )
        return format_html(
            "<table><thead><tr><th>Run</th><th>Status</th><th>Trigger</th><th>Requested</th>"
            "<th>RTO</th><th>Mismatches</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def save_model(self, request, obj, form, change):
        services.save_drill(obj, dsn=form.cleaned_data.get("dsn") or None, may_target_portal=True)

    def delete_model(self, request, obj):
        services.delete_drill(obj)

    def delete_queryset(self, request, queryset):
        for drill in queryset:
            services.delete_drill(drill)

    @admin.action(description="Run now (queue a drill run)")
    def run_now(self, request, queryset):
        if not can_operate(request.user, request):
            messages.error(request, "Only operators and tenant admins may run drills.")
            return
        for drill in queryset[:1]:
            try:
                run = services.request_run(
                    drill, trigger="admin", requested_by=request.user.get_username()
                )
            except services.RunConflict as exc:
                messages.error(request, str(exc))
                return
            messages.success(
                request, f"Run {run.pk} of {drill.name} queued; it appears under Drill runs."
            )
        if queryset.count() > 1:
            messages.warning(request, "Drills never run at once: only the first one was queued.")


@admin.register(DrillRun)
class DrillRunAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = (
        "id",
        "drill",
        "status_display",
        "trigger",
        "created_at",
        "duration",
        "rto_display",
        "rpo_display",
        "mismatch_count",
    )
    list_filter = ("status", "kind", "trigger")
    list_select_related = ("drill",)
    actions = ["cancel"]
    fields = (
        "drill",
        "kind",
        "status_display",
        "trigger",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "rto_display",
        "rpo_display",
        "backup_display",
        "error",
        "phase_table",
        "verification_table",
        "mismatch_list",
        "warnings",
        "rollback_display",
        "evidence",
        "log",
    )
    readonly_fields = fields

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj):
        return _status_badge(obj.status)

    @admin.display(description="Duration")
    def duration(self, obj):
        if obj.started_at and obj.finished_at:
            return _seconds((obj.finished_at - obj.started_at).total_seconds())
        return "—"

    @admin.display(description="RTO (target)")
    def rto_display(self, obj):
        if obj.rto_seconds is None:
            return "—"
        verdict = "met" if obj.rto_met else "MISSED"
        return f"{_seconds(obj.rto_seconds)} ({_seconds(obj.drill.rto_target_seconds)}, {verdict})"

    @admin.display(description="RPO (target)")
    def rpo_display(self, obj):
        if obj.rpo_seconds is None or obj.rpo_met is None:
            return "—"
        verdict = "met" if obj.rpo_met else "MISSED"
        return f"{_seconds(obj.rpo_seconds)} ({_seconds(obj.drill.rpo_target_seconds)}, {verdict})"

    @admin.display(description="Mismatches")
    def mismatch_count(self, obj):
        return len(obj.mismatches)

    @admin.display(description="Backup")
    def backup_display(self, obj):
        if not obj.backup_sha256:
            return "—"
        return f"{obj.backup_bytes:,} bytes, SHA-256 {obj.backup_sha256}"

    @admin.display(description="Phases")
    def phase_table(self, obj):
        if not obj.phases:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td class='num'>{}</td><td>{}</td></tr>",
            (
                (p["name"], p["status"], f"{p['seconds']:.2f} s", p.get("detail", ""))
                for p in obj.phases
            ),
        )
        return format_html(
            "<table><thead><tr><th>Phase</th><th>Status</th><th>Time</th><th>Detail</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Per-table verification")
    def verification_table(self, obj):
        if not obj.tables:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td class='num'>{}</td><td class='num'>{}</td><td><code>{}</code>"
            "</td><td><code>{}</code></td><td>{}</td></tr>",
            (
                (
                    t["table"],
                    f"{t['source_rows']:,}",
                    "—" if t.get("shadow_rows") is None else f"{t['shadow_rows']:,}",
                    t["source_checksum"],
                    t.get("shadow_checksum") or "—",
                    mark_safe(_status_badge("passed" if t.get("match") else "failed")),  # noqa: S308
                )
                for t in obj.tables
            ),
        )
        return format_html(
            "<table><thead><tr><th>Table</th><th>Rows (backup)</th><th>Rows (shadow)</th>"
            "<th>Checksum (backup)</th><th>Checksum (shadow)</th><th>Match</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Mismatches")
    def mismatch_list(self, obj):
        if not obj.mismatches:
            return "none"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((m,) for m in obj.mismatches))
        )

    @admin.display(description="Rollback rehearsal")
    def rollback_display(self, obj):
        plan = (obj.report or {}).get("rollback") or {}
        if not plan:
            return "—"
        parts = [
            (key, ", ".join(plan[key]) if isinstance(plan[key], list) else plan[key])
            for key in ("state", "irreversible", "backward", "forward")
            if plan.get(key)
        ]
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", parts))

    @admin.action(description="Cancel (the shadow database is dropped)")
    def cancel(self, request, queryset):
        if not can_operate(request.user, request):
            messages.error(request, "Only operators and tenant admins may cancel drills.")
            return
        for run in queryset:
            services.cancel_run(run, by=request.user.get_username())
        messages.success(request, "Cancellation requested.")


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    list_display = ("id", "target_key", "snapshot_at", "size_display", "sha256", "status")
    list_filter = ("status", "target_key")
    exclude = ("manifest",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            return queryset.visible_to(tenant)
        return queryset if request.user.is_superuser else queryset.none()

    @admin.display(description="Size", ordering="size_bytes")
    def size_display(self, obj):
        return f"{obj.size_bytes / 1e6:,.1f} MB"
