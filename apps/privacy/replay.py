"""Replaying erasures after a restore from an older backup (`manage.py replay_erasures`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from apps.audit.services import record_event
from apps.privacy import identity as ident
from apps.privacy import journal
from apps.privacy.models import ErasureRecord
from apps.privacy.rights import Context, reason_of
from apps.privacy.sources import sources_for

logger = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    rows: dict[str, int]
    failed: dict[str, str]


def replay_erasures(since: datetime, tenant=None) -> ReplayReport:
    """Apply every erasure recorded since `since` again, so that a database restored from an
    older backup does not bring erased subjects back. The records come from the database and
    from the journal outside it (apps/privacy/journal.py), which still has the records of
    erasures made after the backup was taken. Idempotent: an erased row no longer matches its
    subject's key (keyed hashes are not hashed twice). A source that fails is reported and its
    records stay unreplayed; the others go on."""
    from apps.tenancy.models import Tenant
    from apps.tenancy.rls import all_tenants_context

    report = ReplayReport(rows={}, failed={})
    with all_tenants_context():
        tenants = [tenant] if tenant else list(Tenant.objects.all())
        journalled: dict[int, dict[str, set[str]]] = {}
        for entry in journal.entries(since):
            if entry.get("status") == ErasureRecord.DONE:
                sources = journalled.setdefault(entry["tenant"], {})
                sources.setdefault(entry["source"], set()).update(entry["key_hashes"])
        for current in tenants:
            records = ErasureRecord.objects.for_tenant(current).filter(
                executed_at__gte=since, status=ErasureRecord.DONE
            )
            by_source = {k: set(v) for k, v in journalled.get(current.pk, {}).items()}
            for record in records:
                by_source.setdefault(record.source, set()).update(record.key_hashes)
            if not by_source:
                continue
            context = Context(key=ident.hash_key(current))
            replayed = []
            for source in sources_for(current):
                keys = by_source.get(source.name)
                if not keys or not source.replayable:
                    continue
                label = f"{current.slug}:{source.name}"
                try:
                    report.rows[label] = source.replay(current, keys, context)
                    replayed.append(source.name)
                except Exception as exc:
                    logger.warning("replay of %s failed", label, exc_info=True)
                    report.failed[label] = reason_of(exc)
            records.filter(source__in=replayed).update(replayed_at=timezone.now())
            record_event(
                tenant_id=current.pk,
                action="privacy.erasures_replayed",
                target_type="privacy.erasurerecord",
                after={
                    "since": since.isoformat(),
                    "sources": sorted(replayed),
                    "failed": sorted(report.failed),
                },
            )
    return report
