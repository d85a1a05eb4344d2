"""Platform plumbing shared by every domain: idempotency records, the outbox, heartbeats."""

from django.db import models


class IdempotencyRecord(models.Model):
    """The first response to a creating POST, replayed for 24 h to the same key."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "endpoint", "key"], name="idempotency_unique_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.key}"


class OutboxMessage(models.Model):
    """A side effect recorded in the transaction of the write that caused it.

    Dispatched to Celery after commit; if the broker is down the row stays pending and the
    `drain_outbox` beat job (or `manage.py drain_outbox`) sends it later.
    """

    task_name = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_pending",
                condition=models.Q(dispatched_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk}"


class Heartbeat(models.Model):
    name = models.CharField(max_length=64, unique=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class TaskOutcome(models.Model):
    """Counts of Celery task outcomes, exported on /metrics (tasks run in other processes)."""

    task_name = models.CharField(max_length=200)
    state = models.CharField(max_length=32)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task_name", "state"], name="task_outcome_unique")
        ]

    def __str__(self) -> str:
        return f"{self.task_name} {self.state}"
