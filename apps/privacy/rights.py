"""Erasure, rectification, restriction and objection: what each right does to the data map.

Erasure and rectification go in two steps. The dry run (`preview`) asks every source what would
change, per field, with counts, and stores that plan on the request; a request cannot start
without one. Starting (`in_progress`) stops processing at once: a `*` restriction of kind
`erasure` is recorded in the same transaction, so applications reading the restrictions API stop
using the subject immediately (the soft delete). A worker then executes the erasure source by
source, each in its own transaction, and writes one non-personal `ErasureRecord` per source
(done, retained on legal hold, or failed with the reason). Sources already done are skipped when
a failed request is retried. The request's own record (`privacy.requests`, which runs last) keeps
the subject's identity until every other source is done; then it keeps only the keyed hash.

Restriction and objection record one `SubjectRestriction` per purpose, readable by
applications, and complete at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import record_event, store_evidence
from apps.privacy import identity as ident
from apps.privacy import journal
from apps.privacy.connectors import Pending, forget_results
from apps.privacy.identity import Identity
from apps.privacy.models import (
    ConnectorCall,
    ErasureRecord,
    PrivacyRequest,
    RequestType,
    RestrictionKind,
    Status,
    SubjectRestriction,
)
from apps.privacy.sources import Outcome, SourceError, check_changes, sources_for

logger = logging.getLogger(__name__)

PLANNED_TYPES = (RequestType.ERASURE, RequestType.RECTIFICATION)
RESTRICTING_TYPES = {
    RequestType.RESTRICTION: RestrictionKind.RESTRICTION,
    RequestType.OBJECTION: RestrictionKind.OBJECTION,
}


@dataclass
class Context:
    key: bytes
    request: PrivacyRequest | None = None


def identity_of(request: PrivacyRequest) -> Identity:
    return Identity.of(request.subject_email, request.subject_external_id)


def context_for(request: PrivacyRequest) -> Context:
    return Context(key=ident.hash_key(request.tenant_id), request=request)


# --- checks made when a request is received -------------------------------------------------


def clean_corrections(tenant, corrections: object) -> dict:
    """{source: {field: value}} for known sources and fields; ValidationError otherwise."""
    if not isinstance(corrections, dict) or not corrections:
        raise ValidationError(
            {"corrections": 'Give the corrections: {"source": {"field": "corrected value"}}.'}
        )
    known = {source.name: source for source in sources_for(tenant)}
    errors = {}
    for name, changes in corrections.items():
        source = known.get(name)
        if source is None:
            errors[f"corrections.{name}"] = f"No source {name}; known: {', '.join(sorted(known))}."
            continue
        if source.kind == "webhook":
            if not isinstance(changes, dict) or not changes:
                errors[f"corrections.{name}"] = "Give the corrected fields as an object."
            continue
        try:
            check_changes(source, changes)
        except ValueError as exc:
            errors[f"corrections.{name}"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return corrections


def clean_purposes(purposes: object) -> list[str]:
    if purposes in (None, "", []):
        return ["*"]
    if not isinstance(purposes, list) or not all(isinstance(p, str) and p for p in purposes):
        raise ValidationError({"purposes": "Give the purposes as a list of slugs (or * for all)."})
    return sorted({p.strip() for p in purposes})


# --- the dry run ----------------------------------------------------------------------------


def preview(request: PrivacyRequest, now: datetime | None = None) -> PrivacyRequest:
    """Ask every source what the erasure (or rectification) would change; store the plan."""
    if request.request_type not in PLANNED_TYPES:
        raise ValidationError({"request_type": "Only erasure and rectification have a dry run."})
    if request.status not in (Status.VERIFIED, Status.APPROVED, Status.FAILED):
        raise ValidationError(
            {"status": f"A dry run needs a verified or approved request, not {request.status}."}
        )
    context, who = context_for(request), identity_of(request)
    sources = []
    for source in sources_for(request.tenant):
        rectifying = request.request_type == RequestType.RECTIFICATION
        if rectifying and source.name not in request.corrections:
            continue
        try:
            entry = source.preview(request.tenant, who, context).to_dict()
        except Pending as exc:
            entry = {"source": source.name, "kind": source.kind, "pending": str(exc)}
        except SourceError as exc:
            entry = {"source": source.name, "kind": source.kind, "error": str(exc)}
        if request.request_type == RequestType.RECTIFICATION:
            entry["changes"] = sorted(request.corrections[source.name])
        sources.append(entry)
    plan = {
        "request_type": request.request_type,
        "sources": sources,
        "rows": sum(entry.get("rows", 0) for entry in sources),
        "errors": [e["source"] for e in sources if e.get("error") or e.get("pending")],
        "data_map": data_map_fingerprint(request.tenant),
    }
    # A dry run's answers are good for this plan only: the next dry run asks the connectors again.
    ConnectorCall.objects.filter(
        request=request, action="preview", status=ConnectorCall.DONE
    ).update(status=ConnectorCall.NEW, result={})
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
        request.plan = plan
        request.planned_at = now or timezone.now()
        request.save(update_fields=["plan", "planned_at"])
        record_event(
            tenant_id=request.tenant_id,
            action="privacy_request.previewed",
            target=request,
            after={"rows": plan["rows"], "sources": len(sources), "errors": plan["errors"]},
        )
    return request


def data_map_fingerprint(tenant) -> str:
    """Changes whenever a source or a field's treatment changes: a dry run of another data map
    does not describe what an erasure would do now."""
    import hashlib
    import json

    described = [
        [source.name, {name: spec.to_dict() for name, spec in source.field_specs().items()}]
        for source in sources_for(tenant)
    ]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def check_can_start(request: PrivacyRequest) -> None:
    if request.request_type not in PLANNED_TYPES:
        return
    if not request.planned_at:
        raise ValidationError(
            {"plan": "Run the dry run first (POST .../preview) and read what would change."}
        )
    if request.plan.get("errors"):
        raise ValidationError(
            {
                "plan": f"The dry run could not reach {', '.join(request.plan['errors'])} (or "
                "is still waiting for them); fix those sources and run it again."
            }
        )
    if request.plan.get("data_map") != data_map_fingerprint(request.tenant):
        raise ValidationError(
            {"plan": "The data map changed since the dry run; run it again and read it."}
        )


def on_started(request: PrivacyRequest) -> None:
    """Inside the transaction that moves the request to in_progress."""
    from apps.core.services import enqueue

    if request.request_type == RequestType.ERASURE:
        _restrict(request, RestrictionKind.ERASURE, ["*"], "erasure requested: stop all processing")
        enqueue("privacy.execute_request", request_id=request.pk)
    elif request.request_type == RequestType.RECTIFICATION:
        enqueue("privacy.execute_request", request_id=request.pk)


# --- execution ------------------------------------------------------------------------------


def _restrict(request: PrivacyRequest, kind: str, purposes: list[str], note: str) -> None:
    """One restriction per purpose and per subject key (email and external id), so an
    application asking by either finds it."""
    keys = ident.keys_of(request.tenant_id, identity_of(request)) or [request.subject_key]
    for key in keys:
        for purpose in purposes:
            SubjectRestriction.objects.get_or_create(
                tenant_id=request.tenant_id,
                subject_key=key,
                kind=kind,
                purpose=purpose,
                lifted_at=None,
                defaults={"request": request, "note": note},
            )


@contextmanager
def _claimed(request: PrivacyRequest) -> Iterator[bool]:
    """One worker at a time per request (a redelivered task, a second callback): a session
    advisory lock on PostgreSQL, released when the run ends or its connection dies."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = (CLAIM_NAMESPACE << 32) | request.pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


CLAIM_NAMESPACE = 0x5052  # "PR": keeps these keys apart from other advisory locks


def execute(request: PrivacyRequest) -> PrivacyRequest:
    """Run an erasure or rectification that is in progress (a worker calls this). A run that
    finds another one at work on the same request leaves it alone."""
    with _claimed(request) as mine:
        if not mine:
            return request
        request = PrivacyRequest.objects.get(pk=request.pk)
        if request.status != Status.IN_PROGRESS:
            return request
        if request.request_type == RequestType.ERASURE:
            return _erase(request)
        if request.request_type == RequestType.RECTIFICATION:
            return _rectify(request)
    raise ValueError(f"nothing to execute for a {request.request_type} request")


def _erase(request: PrivacyRequest) -> PrivacyRequest:
    from apps.privacy.services import complete, transition

    context, who = context_for(request), identity_of(request)
    plan = request.plan
    keys = ident.keys_of(request.tenant_id, who) or [request.subject_key]
    finished = {
        r.source: r
        for r in ErasureRecord.objects.filter(
            request=request, status__in=(ErasureRecord.DONE, ErasureRecord.RETAINED)
        )
    }
    outcomes: list[dict] = [record_outcome(r) for r in finished.values()]
    problems, waiting = [], []
    for source in sources_for(request.tenant):
        if source.name in finished:
            continue
        if source.runs_last and (problems or waiting):
            outcomes.append({"source": source.name, "status": "not started", "rows": 0})
            continue
        try:
            outcome = source.erase(request.tenant, who, context)
        except Pending as exc:
            waiting.append(source.name)
            outcomes.append({"source": source.name, "status": "pending", "detail": str(exc)})
            continue
        except Exception as exc:  # each source in its own transaction: record and go on
            logger.warning("erasure of %s failed", source.name, exc_info=True)
            outcome = Outcome(source=source.name, status="failed", detail=reason_of(exc))
            problems.append(source.name)
        record, _ = ErasureRecord.objects.update_or_create(
            request=request,
            source=source.name,
            defaults={
                "tenant_id": request.tenant_id,
                "key_hashes": keys,
                "strategies": outcome.strategies,
                "rows": outcome.rows,
                "retained": outcome.retained,
                "status": {"done": ErasureRecord.DONE, "retained": ErasureRecord.RETAINED}.get(
                    outcome.status, ErasureRecord.FAILED
                ),
                "detail": outcome.detail,
                "executed_at": timezone.now(),
            },
        )
        journal.append(record)
        outcomes.append(record_outcome(record))
    request.refresh_from_db()
    PrivacyRequest.objects.filter(pk=request.pk).update(outcome={"sources": outcomes})
    if waiting and not problems:
        return request
    if problems:
        return transition(
            request,
            Status.FAILED,
            note=f"erasure failed for {', '.join(problems)}; the other sources are recorded, "
            "retry to finish",
        )
    forget_results(request)
    evidence = store_evidence(
        tenant_id=request.tenant_id,
        kind="privacy_erasure",
        content={
            "request": request.pk,
            "subject_key": request.subject_key,
            "sources": outcomes,
            "plan": plan,
        },
        period=timezone.now().date().isoformat(),
    )
    PrivacyRequest.objects.filter(pk=request.pk).update(evidence=evidence, erased_at=timezone.now())
    rows = sum(entry.get("rows", 0) for entry in outcomes)
    retained = sorted(entry["source"] for entry in outcomes if entry.get("retained"))
    note = f"erased {rows} rows across {len(outcomes)} sources"
    if retained:
        note += f"; legal holds kept fields in {', '.join(retained)}"
    return complete(request, note=note)


def record_outcome(record: ErasureRecord) -> dict:
    return {
        "source": record.source,
        "status": record.status,
        "rows": record.rows,
        "strategies": record.strategies,
        "retained": record.retained,
        "detail": record.detail,
    }


def reason_of(exc: Exception) -> str:
    """Why a source failed, without what a database error may quote of a row (its DETAIL and
    CONTEXT lines): the first line only, which names constraints and columns, not values."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def _rectify(request: PrivacyRequest) -> PrivacyRequest:
    from apps.privacy.services import complete, transition

    context, who = context_for(request), identity_of(request)
    done = {e["source"]: e for e in request.outcome.get("sources", []) if e["status"] == "done"}
    outcomes, problems, waiting = list(done.values()), [], []
    for source in sources_for(request.tenant):
        if source.name not in request.corrections or source.name in done:
            continue
        try:
            outcome = source.rectify(request.tenant, who, request.corrections[source.name], context)
        except Pending as exc:
            waiting.append(source.name)
            outcomes.append({"source": source.name, "status": "pending", "detail": str(exc)})
            continue
        except Exception as exc:
            outcome = Outcome(source=source.name, status="failed", detail=reason_of(exc))
            problems.append(source.name)
        outcomes.append(outcome.to_dict())
    PrivacyRequest.objects.filter(pk=request.pk).update(outcome={"sources": outcomes})
    request.refresh_from_db()
    if waiting and not problems:
        return request
    if problems:
        return transition(
            request, Status.FAILED, note=f"rectification failed for {', '.join(problems)}"
        )
    forget_results(request)
    evidence = store_evidence(
        tenant_id=request.tenant_id,
        kind="privacy_rectification",
        content={"request": request.pk, "subject_key": request.subject_key, "sources": outcomes},
        period=timezone.now().date().isoformat(),
    )
    PrivacyRequest.objects.filter(pk=request.pk).update(evidence=evidence)
    rows = sum(entry.get("rows", 0) for entry in outcomes)
    return complete(request, note=f"rectified {rows} rows")


def record_restrictions(request: PrivacyRequest) -> PrivacyRequest:
    """Restriction or objection: one restriction per purpose, then completed with evidence."""
    from apps.privacy.services import complete

    kind = RESTRICTING_TYPES[request.request_type]
    with transaction.atomic():
        _restrict(request, kind, request.purposes or ["*"], f"request {request.pk}")
        evidence = store_evidence(
            tenant_id=request.tenant_id,
            kind=f"privacy_{kind}",
            content={
                "request": request.pk,
                "subject_key": request.subject_key,
                "purposes": request.purposes or ["*"],
            },
            period=timezone.now().date().isoformat(),
        )
        PrivacyRequest.objects.filter(pk=request.pk).update(evidence=evidence)
        return complete(request, note=f"{kind} recorded for {', '.join(request.purposes or ['*'])}")
