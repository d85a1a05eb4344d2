"""Writes to the audit trail and the evidence store."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from apps.audit.hashing import event_fields, event_hash, sha256_of, to_json_value
from apps.audit.models import AuditChain, AuditEvent, EvidenceArtifact
from apps.tenancy.rls import all_tenants_context, current_state
from opsportal.context import current_actor, current_request_id

logger = logging.getLogger(__name__)


def chain_key(tenant_id: int | None) -> str:
    return f"tenant:{tenant_id}" if tenant_id else "system"


def _locked_chain(tenant_id: int | None) -> AuditChain:
    key = chain_key(tenant_id)
    chain = AuditChain.objects.select_for_update().filter(key=key).first()
    if chain is None:
        try:
            with transaction.atomic():
                AuditChain.objects.create(key=key, tenant_id=tenant_id)
        except IntegrityError:
            pass  # created concurrently; lock the winner's row below
        chain = AuditChain.objects.select_for_update().get(key=key)
    return chain


def _scope_covering(tenant_id: int | None):
    """The current scope if it already covers this chain (the usual case), else every chain."""
    tenant_scope, all_tenants = current_state()
    if all_tenants == "on" or (tenant_id is not None and tenant_scope == str(tenant_id)):
        return nullcontext()
    return all_tenants_context()


def record_event(
    *,
    tenant_id: int | None,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: Any = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one event to the tenant's chain. Call inside the transaction of the change.

    The append runs with every chain in scope: the business write was already checked by its
    own table's policy, and a superuser's or a system job's change may belong to another
    tenant's chain (or the system chain) than the request's scope.
    """
    if target is not None:
        target_type, target_id = target._meta.label_lower, target.pk
    change = Change(action, target_type, target_id, before, after)
    return record_events(tenant_id=tenant_id, changes=[change])[0]


@dataclass(frozen=True)
class Change:
    """One event's content for `record_events`."""

    action: str
    target_type: str
    target_id: Any
    before: dict | None = None
    after: dict | None = None

    @classmethod
    def of(
        cls,
        action: str,
        target: models.Model,
        before: dict | None = None,
        after: dict | None = None,
    ) -> Change:
        return cls(action, target._meta.label_lower, target.pk, before, after)


def record_events(*, tenant_id: int | None, changes: Sequence[Change]) -> list[AuditEvent]:
    """Append events to the tenant's chain in order, exactly as `record_event` appends each
    (same fields, same hashes, consecutive `seq`), with the chain head locked and advanced once
    and the events inserted in one statement. For bulk writes: appending one by one locks and
    rewrites the head row once per event, and within one transaction each rewrite gets slower
    (about 1.7 ms an event at 100 events)."""
    if not changes:
        return []
    actor = current_actor()
    request_id = current_request_id() or ""
    with transaction.atomic(savepoint=False), _scope_covering(tenant_id):
        chain = _locked_chain(tenant_id)
        seq, prev_hash = chain.last_seq, chain.last_hash
        events = []
        for change in changes:
            seq += 1
            event = AuditEvent(
                chain=chain.key,
                seq=seq,
                tenant_id=tenant_id,
                actor_user_id=actor.user_id,
                actor_token_id=actor.token_id,
                actor_label=actor.label,
                action=change.action,
                target_type=change.target_type,
                target_id=str(change.target_id),
                before=to_json_value(change.before),
                after=to_json_value(change.after),
                request_id=request_id,
                ip=actor.ip,
                created_at=timezone.now(),
                prev_hash=prev_hash,
            )
            event.hash = prev_hash = event_hash(prev_hash, event_fields(event))
            events.append(event)
        if len(events) == 1:
            events[0].save()
        else:
            AuditEvent.objects.bulk_create(events)
        AuditChain.objects.filter(pk=chain.pk).update(last_seq=seq, last_hash=prev_hash)
    return events


def store_evidence(
    *, tenant_id: int | None, kind: str, content: dict, period: str = ""
) -> EvidenceArtifact:
    """Keep a report or drill result as evidence, hashed and audited."""
    with transaction.atomic(savepoint=False):
        artifact = EvidenceArtifact.objects.create(
            tenant_id=tenant_id,
            kind=kind,
            period=period,
            content=to_json_value(content),
            sha256=sha256_of(content),
        )
        record_event(
            tenant_id=tenant_id,
            action="evidence.stored",
            target=artifact,
            after={"kind": kind, "period": period, "sha256": artifact.sha256},
        )
    return artifact


def record_checkpoint(directory: Path | None = None, now: datetime | None = None) -> Path:
    """Write every chain's head to a file outside the database (and to the log).

    A chain can be rewritten consistently by someone with database access; a head recorded
    elsewhere earlier cannot, so `verify_audit --checkpoint` catches that rewrite.
    """
    now = now or timezone.now()
    directory = Path(directory or settings.EVIDENCE_DIR) / "audit-checkpoints"
    directory.mkdir(parents=True, exist_ok=True)
    heads = {
        chain.key: {"seq": chain.last_seq, "hash": chain.last_hash}
        for chain in AuditChain.objects.order_by("key")
    }
    document = {"recorded_at": now.isoformat(), "chains": heads}
    path = directory / f"audit-head-{now:%Y-%m-%dT%H%M%S}.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True))
    logger.info("audit checkpoint", extra={"checkpoint": document, "path": str(path)})
    return path
