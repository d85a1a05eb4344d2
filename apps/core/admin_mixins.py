"""Admin helpers: tenant scoping through the one mechanism, and read-only evidence screens."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse


class TenantScopedAdmin(admin.ModelAdmin):
    """Rows of the admin's active tenant; superusers in "all tenants" mode see every row."""

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            return queryset.for_tenant(tenant)
        return queryset if request.user.is_superuser else queryset.none()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """New rows can only go to the active tenant (or any, for a superuser in "all")."""
        if db_field.name == "tenant":
            from apps.tenancy.models import Tenant
            from apps.tenancy.selectors import tenants_of

            tenant = getattr(request, "tenant", None)
            if tenant is not None:
                kwargs["queryset"] = Tenant.objects.filter(pk=tenant.pk)
            else:
                kwargs["queryset"] = Tenant.objects.filter(
                    pk__in=[t.pk for t in tenants_of(request.user)]
                )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class OperatorWrites:
    """Anyone with the admin's view permission may look; only operators, tenant admins and
    superusers of the active tenant may add, change or delete (SLOs, drills)."""

    def _operates(self, request) -> bool:
        from apps.tenancy.roles import Role
        from apps.tenancy.selectors import has_role_in_active_tenant

        return has_role_in_active_tenant(request.user, request, (Role.OPERATOR, Role.TENANT_ADMIN))

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._operates(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._operates(request)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._operates(request)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        min_length=5,
        help_text="The requester reads this.",
    )


def ask_reason_then(model_admin, request, queryset, *, action: str, title: str, describe, apply):
    """An admin action that needs a reason (rejecting a request): the first POST shows a form
    listing the selected rows; the second, with a valid reason, calls `apply(reason)`."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        apply(form.cleaned_data["reason"])
        return None
    return TemplateResponse(
        request,
        "admin/action_with_reason.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "form": form,
            "items": [(obj.pk, describe(obj)) for obj in queryset],
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "opts": model_admin.model._meta,
        },
    )


class VersionedForm(forms.ModelForm):
    """Optimistic locking in the admin: the version the page was opened at travels with the
    form, and a save over someone else's newer change is refused instead of overwriting it."""

    opened_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["opened_version"].initial = self.instance.version

    def clean(self):
        cleaned = super().clean()
        opened = cleaned.get("opened_version")
        if self.instance.pk is not None and opened is not None:
            current = (
                type(self.instance)
                ._base_manager.filter(pk=self.instance.pk)
                .values_list("version", flat=True)
                .first()
            )
            if current != opened:
                raise ValidationError(
                    f"Someone changed this since you opened it (version {opened} → {current}). "
                    "Reload the page and make your change again."
                )
        return cleaned
