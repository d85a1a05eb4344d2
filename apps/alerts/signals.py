"""Audit for the one many-to-many of alerts (the ORM-layer capture does not see m2m writes)."""

from __future__ import annotations

from apps.audit.services import record_event


def audit_escalation_channels(sender, instance, action, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    record_event(
        tenant_id=instance.tenant_id,
        action=f"alert_policy.escalation_channels_{action.removeprefix('post_')}",
        target=instance,
        after={"channel_ids": sorted(pk_set or [])},
    )
