"""Audit for models the portal does not own (users, groups, beat schedules).

Their writes come from Django's and django-celery-beat's own admin and code, not our services, so
signals record them, in the same transaction. Secrets (password hashes) are never recorded.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import post_delete, post_save, pre_save
from django_celery_beat.models import PeriodicTask

from apps.audit.services import record_event

WATCHED_FIELDS = {
    "user": ("username", "email", "is_active", "is_staff", "is_superuser"),
    "group": ("name",),
    "periodictask": ("name", "task", "enabled", "interval_id", "crontab_id", "kwargs"),
}


def _fields(instance) -> tuple[str, ...]:
    return WATCHED_FIELDS[instance._meta.model_name]


def _snapshot(instance) -> dict:
    return {name: getattr(instance, name) for name in _fields(instance)}


def _remember_before(sender, instance, **kwargs) -> None:
    if instance.pk is None:
        instance._audit_before = None
        return
    stored = sender._base_manager.filter(pk=instance.pk)
    instance._audit_before = stored.values(*_fields(instance)).first()
    if hasattr(instance, "password"):
        # Only whether the password changed is recorded, never the hash itself.
        old_hash = stored.values_list("password", flat=True).first()
        instance._audit_password_changed = old_hash != instance.password


def _record_save(sender, instance, created, update_fields=None, **kwargs) -> None:
    before = getattr(instance, "_audit_before", None)
    after = _snapshot(instance)
    if not created and getattr(instance, "_audit_password_changed", False):
        after["password_changed"] = True
    if not created and before == after:
        return  # e.g. last_login bumps: not a change worth an audit event
    name = instance._meta.model_name
    record_event(
        tenant_id=None,
        action=f"{name}.{'created' if created else 'updated'}",
        target=instance,
        before=before,
        after=after,
    )


def _record_delete(sender, instance, **kwargs) -> None:
    record_event(
        tenant_id=None,
        action=f"{instance._meta.model_name}.deleted",
        target=instance,
        before=_snapshot(instance),
        after=None,
    )


def connect() -> None:
    for model in (get_user_model(), Group, PeriodicTask):
        uid = f"audit-{model._meta.label_lower}"
        pre_save.connect(_remember_before, sender=model, dispatch_uid=uid + "-pre")
        post_save.connect(_record_save, sender=model, dispatch_uid=uid + "-save")
        post_delete.connect(_record_delete, sender=model, dispatch_uid=uid + "-delete")
