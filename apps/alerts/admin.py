"""Alerts in the admin: the alert list and detail with deliveries, channels (secrets write-only,
"send test", health), policies, and the dead-letter queue with requeue."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.html import format_html

from apps.alerts import selectors, services
from apps.alerts.models import (
    Alert,
    AlertStatus,
    Channel,
    DeadLetter,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Policy,
)
from apps.core.admin_mixins import ReadOnlyAdmin, TenantScopedAdmin


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fk_name = "alert"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["channel", "purpose", "status", "attempts", "delivered_at", "dead_at", "last_error"]
    readonly_fields = fields
    ordering = ["id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeliveryOutcomeFilter(admin.SimpleListFilter):
    title = "channel outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [
            ("dead", "has a dead letter"),
            ("pending", "delivery in progress"),
            ("delivered", "all delivered"),
        ]

    def queryset(self, request, queryset):
        deliveries = Delivery.objects.filter(alert=OuterRef("pk"))
        if self.value() == "dead":
            return queryset.filter(Exists(deliveries.filter(status=DeliveryStatus.DEAD)))
        if self.value() == "pending":
            return queryset.filter(
                Exists(deliveries.exclude(status__in=[DeliveryStatus.DEAD, "delivered"]))
            )
        if self.value() == "delivered":
            return queryset.filter(Exists(deliveries)).exclude(
                Exists(deliveries.exclude(status=DeliveryStatus.DELIVERED))
            )
        return queryset


@admin.register(Alert)
class AlertAdmin(TenantScopedAdmin):
    list_display = ["title", "tier", "status", "source", "count", "last_seen_at", "tenant"]
    list_filter = ["status", "tier", "source", DeliveryOutcomeFilter]
    search_fields = ["title", "dedup_key", "source"]
    date_hierarchy = "first_seen_at"
    inlines = [DeliveryInline]
    actions = ["acknowledge", "resolve"]
    readonly_fields = [
        "tenant",
        "source",
        "tier",
        "dedup_key",
        "title",
        "summary",
        "details",
        "links",
        "status",
        "notify_state",
        "count",
        "first_seen_at",
        "last_seen_at",
        "first_notified_at",
        "last_notified_at",
        "escalated_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "resolved_by",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _transition(self, request, queryset, action, label):
        done = refused = 0
        for alert in queryset:
            try:
                action(alert, request.user.get_username())
                done += 1
            except services.InvalidTransition:
                refused += 1
        messages.success(request, f"{label} {done} alert(s).")
        if refused:
            messages.warning(request, f"{refused} alert(s) were already resolved.")

    @admin.action(description="Acknowledge selected alerts")
    def acknowledge(self, request, queryset):
        self._transition(
            request,
            queryset.exclude(status=AlertStatus.ACKNOWLEDGED),
            services.acknowledge_alert,
            "Acknowledged",
        )

    @admin.action(description="Resolve selected alerts")
    def resolve(self, request, queryset):
        self._transition(request, queryset, services.close_alert, "Resolved")


class ChannelForm(forms.ModelForm):
    url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=Channel._meta.get_field("url").help_text,
    )
    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Slack: the incoming webhook URL. PagerDuty: the routing key. Webhook: the "
        "signing secret (leave blank to generate one). Stored encrypted; never shown again. "
        "Leave blank to keep the current one.",
    )

    class Meta:
        model = Channel
        fields = ["tenant", "name", "kind", "url", "emails", "enabled"]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind:
            try:
                from apps.alerts.validation import validate_channel

                validate_channel(
                    kind,
                    url=cleaned.get("url") or "",
                    emails=cleaned.get("emails") or "",
                    secret=cleaned.get("secret") or "",
                    has_secret=bool(self.instance.secret_ciphertext) and self.instance.kind == kind,
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
        return cleaned


@admin.register(Channel)
class ChannelAdmin(TenantScopedAdmin):
    form = ChannelForm
    list_display = [
        "name",
        "kind",
        "enabled",
        "secret_hint",
        "breaker",
        "last_success",
        "failure_rate_24h",
        "tenant",
    ]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["secret_hint", "health_figures"]
    actions = ["send_test", "requeue_dead_letters"]

    def get_queryset(self, request):
        return selectors.with_delivery_figures(
            super().get_queryset(request).select_related("health")
        )

    def get_fields(self, request, obj=None):
        fields = ["tenant", "name", "kind", "url", "emails", "secret", "enabled", "secret_hint"]
        return [*fields, "health_figures"] if obj else fields

    def save_model(self, request, obj, form, change):
        if change and "kind" in form.changed_data:
            obj.secret_ciphertext = obj.secret_hint = ""
        _, generated = services.save_channel(obj, secret=form.cleaned_data.get("secret", ""))
        if generated:
            messages.warning(
                request,
                f"Signing secret generated. Copy it now, it will not be shown again: {generated}",
            )

    @admin.display(description="breaker")
    def breaker(self, obj):
        health = getattr(obj, "health", None)
        return health.get_state_display() if health else "closed"

    @admin.display(description="last success")
    def last_success(self, obj):
        health = getattr(obj, "health", None)
        return health.last_success_at if health and health.last_success_at else "never"

    @admin.display(description="failures (24 h)")
    def failure_rate_24h(self, obj):
        if not obj.attempts_recent:
            return "no attempts"
        return f"{obj.failures_recent / obj.attempts_recent:.0%} of {obj.attempts_recent}"

    @admin.display(description="health")
    def health_figures(self, obj):
        health = getattr(obj, "health", None)
        if health is None:
            return "no deliveries yet"
        return format_html(
            "breaker {} · consecutive failures {} · open until {} · last success {} · "
            "last failure {} ({}) · 24 h: {} attempts, {} failed",
            health.get_state_display(),
            health.consecutive_failures,
            health.opened_until or "-",
            health.last_success_at or "never",
            health.last_failure_at or "never",
            health.last_error or "-",
            obj.attempts_recent,
            obj.failures_recent,
        )

    @admin.action(description="Send a test notification")
    def send_test(self, request, queryset):
        for channel in queryset:
            services.send_test(channel)
        messages.success(
            request, f"Test notification queued for {queryset.count()} channel(s); see Deliveries."
        )

    @admin.action(description="Requeue this channel's dead letters")
    def requeue_dead_letters(self, request, queryset):
        total = sum(
            services.requeue_dead_letters(channel.tenant, channel_id=channel.pk)
            for channel in queryset
        )
        messages.success(request, f"Requeued {total} dead letter(s).")


class PolicyForm(forms.ModelForm):
    class Meta:
        model = Policy
        fields = ["tenant", "tier", "escalation_channels", *Policy.audit_fields[1:]]

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        foreign = [c.name for c in cleaned.get("escalation_channels") or [] if c.tenant != tenant]
        if foreign:
            self.add_error(
                "escalation_channels",
                f"Channels of another tenant cannot be used: {', '.join(foreign)}.",
            )
        return cleaned


@admin.register(Policy)
class PolicyAdmin(TenantScopedAdmin):
    form = PolicyForm
    list_display = [
        "__str__",
        "tenant",
        "mode",
        "channel_kinds",
        "dedup_window_minutes",
        "escalate_after_minutes",
        "quiet_hours",
        "summary_cadence",
    ]
    list_filter = ["tier", "mode"]
    filter_horizontal = ["escalation_channels"]
    readonly_fields = ["version"]
    fieldsets = [
        (None, {"fields": ["tenant", "tier", "channel_kinds", "mode", "version"]}),
        (
            "Deduplication and thresholds",
            {"fields": ["dedup_window_minutes", "threshold_count", "threshold_window_minutes"]},
        ),
        (
            "Batches and quiet hours",
            {
                "fields": [
                    "batch_interval_minutes",
                    "max_batches_per_day",
                    "quiet_hours",
                    "business_start",
                    "business_end",
                    "business_days",
                ]
            },
        ),
        (
            "Summaries",
            {
                "fields": [
                    "summary_cadence",
                    "summary_time",
                    "summary_weekday",
                    "summary_min_count",
                ]
            },
        ),
        ("Escalation", {"fields": ["escalate_after_minutes", "escalation_channels"]}),
    ]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "escalation_channels":
            tenant = getattr(request, "tenant", None)
            channels = Channel.objects.all()
            kwargs["queryset"] = channels.for_tenant(tenant) if tenant else channels
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            obj.version += 1
        obj.save(audit_action="alert_policy.updated" if change else "alert_policy.created")


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "duration_ms", "outcome", "status_code", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = ["id", "channel", "purpose", "status", "attempts", "alert", "created_at"]
    list_filter = ["status", "purpose", "channel__kind"]
    search_fields = ["idempotency_key", "alert__title"]
    inlines = [AttemptInline]
    list_select_related = ["channel", "alert"]


@admin.register(DeadLetter)
class DeadLetterAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    """The DLQ page: what could not be delivered, why, and a requeue action."""

    list_display = ["id", "channel", "purpose", "alert", "attempts", "age", "last_error"]
    list_filter = ["channel", "purpose"]
    list_select_related = ["channel", "alert"]
    inlines = [AttemptInline]
    actions = ["requeue"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=DeliveryStatus.DEAD)

    @admin.display(description="dead for")
    def age(self, obj):
        if not obj.dead_at:
            return "-"
        minutes = int((timezone.now() - obj.dead_at).total_seconds() // 60)
        return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"

    @admin.action(description="Requeue selected dead letters")
    def requeue(self, request, queryset):
        count = services.requeue_dead_letters(
            getattr(request, "tenant", None), ids=list(queryset.values_list("pk", flat=True))
        )
        messages.success(request, f"Requeued {count} dead letter(s).")
