"""The audit trail: append-only, hash-chained events, one chain per tenant plus one for system.

Capture design (docs/architecture.md, "Audit"): writes are captured at the ORM layer. Models that
inherit `AuditedModel` record an event for every `save()` and `delete()`, and their queryset
records one event per affected row for bulk `update()` and `delete()`, in the same transaction.
Services name the action (`save(audit_action="tenant.renamed")`); anything else gets a generic
`<model>.created/updated/deleted`. Raw SQL is outside this net and not used on audited tables.
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from apps.tenancy.scoping import TenantQuerySet


class AppendOnlyError(RuntimeError):
    pass


def snapshot(instance: models.Model, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The audited fields of an audited model instance (its `audit_fields` by default)."""
    return {name: getattr(instance, name) for name in (fields or instance.audit_fields)}


class AuditedQuerySet(TenantQuerySet):
    def update(self, **kwargs: Any) -> int:
        from apps.audit.services import record_event

        model = self.model
        fields = model.audit_fields
        tenant_field = model.audit_tenant_field
        with transaction.atomic(using=self.db):
            before = {row["pk"]: row for row in self.values("pk", tenant_field, *fields)}
            count = super().update(**kwargs)
            after = model._base_manager.using(self.db).filter(pk__in=list(before))
            for row in after.values("pk", *fields):
                record_event(
                    tenant_id=before[row["pk"]][tenant_field],
                    action=f"{model._meta.model_name}.bulk_updated",
                    target_type=model._meta.label_lower,
                    target_id=row["pk"],
                    before={k: before[row["pk"]][k] for k in fields},
                    after={k: row[k] for k in fields},
                )
        return count

    def delete(self) -> tuple[int, dict[str, int]]:
        from apps.audit.services import record_event

        with transaction.atomic(using=self.db):
            for instance in list(self):
                record_event(
                    tenant_id=instance.audit_tenant_id,
                    action=f"{self.model._meta.model_name}.bulk_deleted",
                    target=instance,
                    before=snapshot(instance, instance.audit_fields),
                    after=None,
                )
            return super().delete()


class AuditedModel(models.Model):
    """Abstract base: every save and delete writes an audit event in the same transaction."""

    audit_fields: tuple[str, ...] = ()
    audit_tenant_field = "tenant_id"

    objects = AuditedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, audit_action: str | None = None, **kwargs: Any) -> None:
        from apps.audit.services import record_event

        name = self._meta.model_name
        with transaction.atomic():
            before = None
            if self.pk is not None and not self._state.adding:
                before = (
                    type(self)._base_manager.filter(pk=self.pk).values(*self.audit_fields).first()
                )
            super().save(*args, **kwargs)
            record_event(
                tenant_id=self.audit_tenant_id,
                action=audit_action or f"{name}.{'updated' if before else 'created'}",
                target=self,
                before=before,
                after=snapshot(self, self.audit_fields),
            )

    def delete(self, *args: Any, audit_action: str | None = None, **kwargs: Any):
        from apps.audit.services import record_event

        with transaction.atomic():
            record_event(
                tenant_id=self.audit_tenant_id,
                action=audit_action or f"{self._meta.model_name}.deleted",
                target=self,
                before=snapshot(self, self.audit_fields),
                after=None,
            )
            return super().delete(*args, **kwargs)

    @property
    def audit_tenant_id(self) -> int | None:
        return getattr(self, self.audit_tenant_field, None)


class AuditChain(models.Model):
    """The head of one hash chain. Appending locks this row, so each tenant appends in order
    without queueing behind other tenants."""

    key = models.CharField(max_length=40, unique=True)
    tenant = models.ForeignKey(
        "tenancy.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return self.key


class AuditEventQuerySet(TenantQuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events are append-only.")

    def delete(self) -> Any:
        raise AppendOnlyError("Audit events are append-only.")


class AuditEvent(models.Model):
    chain = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    tenant = models.ForeignKey(
        "tenancy.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_token_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_event_chain_seq")
        ]
        indexes = [models.Index(fields=["tenant", "created_at"], name="audit_tenant_time")]

    def __str__(self) -> str:
        return f"{self.chain}#{self.seq} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("Audit events are append-only.")


class EvidenceArtifact(models.Model):
    """A report or drill result kept as evidence, with the SHA-256 of its canonical content."""

    tenant = models.ForeignKey(
        "tenancy.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=64, db_index=True)
    period = models.CharField(max_length=32, blank=True, help_text="e.g. 2026-11-23 or 2026-W47")
    content = models.JSONField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.period}".strip()
