"""Consent records: append, read the current state and history, export as a stream."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record_event
from apps.privacy.models import ConsentRecord, ProcessingActivity
from apps.tenancy.models import Tenant

EXPORT_FIELDS = ("subject", "purpose", "granted", "policy_version", "source", "given_at")
CLOCK_SKEW = timedelta(minutes=5)
ACTIVITY_FIELDS = ("name", *ProcessingActivity.audit_fields[1:])


def record_consent(
    tenant: Tenant,
    *,
    subject: str,
    purpose: str,
    granted: bool,
    policy_version: str,
    source: str,
    given_at: datetime,
) -> ConsentRecord:
    """Append one record. `given_at` may lie in the past (a form submitted offline) but not in
    the future: the current state is the latest statement, and a future one would outrank a
    withdrawal made today."""
    if given_at > timezone.now() + CLOCK_SKEW:
        raise ValidationError({"given_at": "Consent cannot be given in the future."})
    with transaction.atomic():
        record = ConsentRecord.objects.create(
            tenant=tenant,
            subject=subject.strip().lower() if "@" in subject else subject.strip(),
            purpose=purpose,
            granted=granted,
            policy_version=policy_version,
            source=source,
            given_at=given_at,
        )
        record_event(
            tenant_id=tenant.pk,
            action="consent.granted" if granted else "consent.withdrawn",
            target=record,
            after={"purpose": purpose, "policy_version": policy_version, "source": source},
        )
    return record


def state_of(tenant: Tenant, subject: str) -> dict:
    """The current state per purpose (the latest record wins) and the full history."""
    key = subject.strip().lower() if "@" in subject else subject.strip()
    history = list(ConsentRecord.objects.for_tenant(tenant).filter(subject=key))
    current: dict[str, ConsentRecord] = {}
    for record in history:  # ordered by given_at
        current[record.purpose] = record
    return {
        "subject": key,
        "purposes": {
            purpose: {
                "granted": r.granted,
                "policy_version": r.policy_version,
                "given_at": r.given_at.isoformat(),
                "source": r.source,
            }
            for purpose, r in sorted(current.items())
        },
        "history": [row_of(r) for r in history],
    }


def row_of(record: ConsentRecord) -> dict:
    return {
        "subject": record.subject,
        "purpose": record.purpose,
        "granted": record.granted,
        "policy_version": record.policy_version,
        "source": record.source,
        "given_at": record.given_at.isoformat(),
    }


def export_stream(tenant: Tenant, fmt: str) -> Iterator[str]:
    """Every record, streamed in pages (memory does not grow with the number of records). The
    response is consumed after the request's database scope has been cleared, so the generator
    enters the tenant's scope itself: without it, row-level security shows no rows."""
    from apps.tenancy.rls import tenant_context

    with tenant_context(tenant):
        yield from _export(tenant, fmt)


def _export(tenant: Tenant, fmt: str) -> Iterator[str]:
    rows = ConsentRecord.objects.for_tenant(tenant).order_by("pk").iterator(chunk_size=2000)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_FIELDS)
        for record in rows:
            writer.writerow([row_of(record)[f] for f in EXPORT_FIELDS])
            if buffer.tell() > 65536:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
        return
    yield "["
    for n, record in enumerate(rows):
        yield ("," if n else "") + json.dumps(row_of(record))
    yield "]\n"


def activities_export(tenant: Tenant, fmt: str) -> str:
    activities = ProcessingActivity.objects.for_tenant(tenant).order_by("name")
    rows = [{f: getattr(a, f) for f in ACTIVITY_FIELDS} for a in activities]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=ACTIVITY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    return json.dumps({"tenant": tenant.slug, "activities": rows}, indent=2)


def completeness(tenant: Tenant) -> dict:
    """Subjects that have data in the data map's sources but no consent record for a purpose
    the tenant marked required (PrivacySettings.required_purposes): {purpose: [subjects]}."""
    from apps.privacy.identity import normalise
    from apps.privacy.services import settings_for
    from apps.privacy.sources import SourceError, sources_for

    required = list(settings_for(tenant).required_purposes or [])
    subjects: set[str] = set()
    unreachable = []
    for source in sources_for(tenant):
        if not source.needs_consent:
            continue
        try:
            for value in source.subjects(tenant):
                kind = "email" if "@" in value else "external_id"
                subjects.add(normalise(kind, value))
        except SourceError as exc:
            unreachable.append(str(exc))
    recorded: dict[str, set[str]] = {purpose: set() for purpose in required}
    rows = ConsentRecord.objects.for_tenant(tenant).filter(purpose__in=required)
    for subject, purpose in rows.values_list("subject", "purpose").iterator():
        recorded[purpose].add(subject)
    missing = {purpose: sorted(subjects - recorded[purpose]) for purpose in required}
    return {
        "required_purposes": required,
        "subjects_with_data": len(subjects),
        "missing": missing,
        "unreachable_sources": unreachable,
    }
