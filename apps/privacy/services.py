"""Writes of the privacy app: receiving a request (deadline, duplicate detection), moving it
through its lifecycle, verifying the subject, extending, pausing and resuming the clock, and the
deadline reminders."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.services import enqueue
from apps.privacy import deadlines
from apps.privacy.models import (
    OPEN_STATUSES,
    PrivacyRequest,
    PrivacySettings,
    RequestType,
    Status,
)
from apps.privacy.reminders import resolve_reminders
from apps.tenancy.models import Tenant

# Who may go where, by hand (the API, the admin). `completed` is not in it: a request completes
# only through the service that did its work and stored the evidence (`complete`). A worker runs
# `in_progress`, so nothing but `failed` (to stop a stuck run) is chosen from there by hand.
# `requires_input` and `paused` return to where they came from (`allowed_transitions`).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    Status.RECEIVED: (Status.IDENTITY_PENDING, Status.VERIFIED, Status.REJECTED, Status.CANCELED),
    Status.IDENTITY_PENDING: (
        Status.VERIFIED,
        Status.REQUIRES_INPUT,
        Status.REJECTED,
        Status.CANCELED,
    ),
    Status.VERIFIED: (Status.APPROVED, Status.REQUIRES_INPUT, Status.REJECTED, Status.CANCELED),
    Status.APPROVED: (Status.IN_PROGRESS, Status.REQUIRES_INPUT, Status.CANCELED),
    Status.IN_PROGRESS: (Status.FAILED,),
    Status.REQUIRES_INPUT: (Status.REJECTED, Status.CANCELED),
    Status.FAILED: (Status.IN_PROGRESS, Status.CANCELED),
    Status.PAUSED: (),
    Status.COMPLETED: (),
    Status.REJECTED: (),
    Status.CANCELED: (),
}
PAUSABLE = (
    Status.RECEIVED,
    Status.IDENTITY_PENDING,
    Status.VERIFIED,
    Status.APPROVED,
    Status.REQUIRES_INPUT,
)


class InvalidTransition(Exception):
    """409: the move is not allowed from the request's status; `allowed` lists what is."""

    def __init__(self, current: str, target: str, allowed: list[str]):
        self.current, self.target, self.allowed = current, target, allowed
        super().__init__(
            f"A request that is {current} cannot become {target}; allowed: "
            f"{', '.join(allowed) or 'none (it is closed)'}."
        )


class StaleVersion(Exception):
    """409: the request changed since the caller read it."""

    def __init__(self, current: int):
        self.current = current
        super().__init__(f"The request changed (it is at version {current}); read it again.")


def settings_for(tenant: Tenant) -> PrivacySettings:
    found = PrivacySettings.objects.for_tenant(tenant).first()
    return found or PrivacySettings(tenant=tenant)


def local_date(tenant: Tenant, at: datetime) -> date:
    return at.astimezone(ZoneInfo(tenant.time_zone)).date()


def _due(request: PrivacyRequest) -> date:
    return deadlines.due_date(
        request.jurisdiction,
        request.received_on,
        extended=request.extended,
        paused=timedelta(seconds=request.paused_seconds),
    )


# --- receiving ------------------------------------------------------------------------------


def create_request(
    tenant: Tenant,
    *,
    request_type: str,
    jurisdiction: str = "",
    subject_email: str = "",
    subject_external_id: str = "",
    channel: str = "web form",
    notes: str = "",
    received_at: datetime | None = None,
    corrections: dict | None = None,
    purposes: list | None = None,
) -> PrivacyRequest:
    """Record a request (always: an unknown subject is still a request to answer), with its
    deadline; a repeat of an open request whose identity was verified is recorded as its
    duplicate (an unverified one could be anybody's, and must not cancel the real one).
    Rectifications carry their corrections, restrictions and objections their purposes, checked
    here (422)."""
    from apps.privacy import rights
    from apps.privacy.identity import Identity, request_key

    if not (subject_email or subject_external_id):
        raise ValidationError({"subject": "Give the subject's email or external id (or both)."})
    received_at = received_at or timezone.now()
    options = settings_for(tenant)
    who = Identity.of(subject_email, subject_external_id)
    request = PrivacyRequest(
        tenant=tenant,
        request_type=request_type,
        jurisdiction=jurisdiction or options.default_jurisdiction,
        subject_email=who.email,
        subject_external_id=who.external_id,
        subject_key=request_key(tenant, who),
        channel=channel,
        notes=notes,
        received_at=received_at,
        received_on=local_date(tenant, received_at),
    )
    if request_type == RequestType.RECTIFICATION:
        request.corrections = rights.clean_corrections(tenant, corrections)
    elif corrections:
        raise ValidationError({"corrections": "Only a rectification carries corrections."})
    if request_type in rights.RESTRICTING_TYPES:
        request.purposes = rights.clean_purposes(purposes)
    elif purposes:
        raise ValidationError({"purposes": "Only restrictions and objections name purposes."})
    request.due_on = _due(request)
    request.acknowledge_by = deadlines.acknowledgement_due(
        request.jurisdiction, request.received_on
    )
    with transaction.atomic():
        request.duplicate_of = _open_duplicate(request, options.duplicate_lookback_days)
        if request.duplicate_of is not None:
            request.status = Status.CANCELED
            request.last_note = (
                f"duplicate of request {request.duplicate_of.pk}, which is being processed"
            )
        request.full_clean(exclude=["tenant", "duplicate_of"])
        request.save(audit_action="privacy_request.received")
    return request


def _open_duplicate(request: PrivacyRequest, lookback_days: int) -> PrivacyRequest | None:
    identity = Q(subject_key=request.subject_key)
    if request.subject_email:
        identity |= Q(subject_email=request.subject_email)
    if request.subject_external_id:
        identity |= Q(subject_external_id=request.subject_external_id)
    since = request.received_at - timedelta(days=lookback_days)
    return (
        PrivacyRequest.objects.for_tenant(request.tenant_id)
        .filter(identity, request_type=request.request_type, received_at__gte=since)
        .filter(status__in=OPEN_STATUSES, duplicate_of__isnull=True, verified_at__isnull=False)
        .exclude(pk=request.pk)
        .order_by("received_at")
        .first()
    )


# --- the lifecycle --------------------------------------------------------------------------


def allowed_transitions(request: PrivacyRequest) -> list[str]:
    allowed = list(TRANSITIONS[request.status])
    if request.status in PAUSABLE:
        allowed.append(Status.PAUSED)
    if request.status == Status.PAUSED:
        allowed = [request.paused_from_status, Status.CANCELED]
    if request.status == Status.REQUIRES_INPUT and request.input_from_status:
        allowed.insert(0, request.input_from_status)
    return allowed


def locked_request(request: PrivacyRequest) -> PrivacyRequest:
    return PrivacyRequest.objects.select_for_update().get(pk=request.pk)


def transition(
    request: PrivacyRequest,
    target: str,
    *,
    note: str = "",
    by: str = "",
    now: datetime | None = None,
    version: int | None = None,
) -> PrivacyRequest:
    """Move a request by hand; InvalidTransition (409) lists the allowed moves, a stale
    `version` is a Conflict too. Pausing stops the clock; leaving `paused` (to where it was) adds
    the paused time to the due date. Starting (`in_progress`) an erasure or rectification needs
    its dry run; it then runs in a worker, as does an access package; a restriction or objection
    is recorded and completed at once."""
    return _move(request, target, note=note, by=by, now=now, version=version)


def complete(request: PrivacyRequest, *, note: str) -> PrivacyRequest:
    """Only for the services that did a request's work and stored its evidence."""
    return _move(request, Status.COMPLETED, note=note, by="", now=None, internal=True)


def _move(request, target, *, note, by, now, version=None, internal=False) -> PrivacyRequest:
    from apps.privacy import rights

    now = now or timezone.now()
    with transaction.atomic():
        request = locked_request(request)
        if version is not None and version != request.version:
            raise StaleVersion(request.version)
        allowed = allowed_transitions(request)
        if internal and request.status == Status.IN_PROGRESS:
            allowed = [Status.COMPLETED, *allowed]
        if target not in allowed:
            raise InvalidTransition(request.status, target, allowed)
        if target == Status.VERIFIED and request.verified_at is None:
            if not note:
                raise ValidationError(
                    {"note": "Manual identity verification needs a note saying how it was done."}
                )
            request.verified_at = now
            request.verification_method = "manual"
        if target == Status.PAUSED:
            request.paused_since = now
            request.paused_from_status = request.status
        elif request.status == Status.PAUSED:
            request.paused_seconds += int((now - request.paused_since).total_seconds())
            request.paused_since = None
            request.paused_from_status = ""
            request.due_on = _due(request)
        if target == Status.REQUIRES_INPUT:
            request.input_from_status = request.status
        elif request.status == Status.REQUIRES_INPUT:
            request.input_from_status = ""
        if target == Status.IN_PROGRESS:
            rights.check_can_start(request)
        if target == Status.COMPLETED:
            request.completed_at = now
        request.status = target
        request.last_note = f"{by}: {note}".strip(": ") if (note or by) else ""
        request.version = F("version") + 1
        request.save(audit_action=f"privacy_request.{target}")
        request.refresh_from_db()
        if target in (Status.COMPLETED, Status.REJECTED, Status.CANCELED):
            resolve_reminders(request)
        if target in (Status.REJECTED, Status.CANCELED, Status.FAILED):
            from apps.privacy.connectors import forget_results

            forget_results(request)
        if target == Status.IN_PROGRESS and request.request_type in EXPORT_TYPES:
            # The package is built by a worker, which then completes the request.
            enqueue("privacy.build_package", request_id=request.pk)
        elif target == Status.IN_PROGRESS:
            rights.on_started(request)
    if target == Status.IN_PROGRESS and request.request_type in rights.RESTRICTING_TYPES:
        request = rights.record_restrictions(request)
    return request


def extend(
    request: PrivacyRequest, *, reason: str, notice_on: date, now: datetime | None = None
) -> PrivacyRequest:
    """The one extension the statute allows, with its reason and the day the subject was told."""
    if not reason.strip():
        raise ValidationError({"reason": "An extension needs its reason (it goes to the subject)."})
    with transaction.atomic():
        request = locked_request(request)
        if request.status not in OPEN_STATUSES:
            raise InvalidTransition(request.status, "extended", [])
        if request.extended:
            raise ValidationError({"extended": "This request was already extended once."})
        today = local_date(request.tenant, now or timezone.now())
        if today > request.due_on:
            raise ValidationError(
                {"extended": "The deadline has passed: an extension must be made before it."}
            )
        if notice_on > today or notice_on < request.received_on:
            raise ValidationError(
                {"notice_on": "The day the subject was told: between receipt and today."}
            )
        request.extended = True
        request.extension_reason = reason.strip()
        request.extension_notice_on = notice_on
        request.due_on = _due(request)
        request.reminders_sent = []
        request.version = F("version") + 1
        request.save(audit_action="privacy_request.extended")
        request.refresh_from_db()
        resolve_reminders(request)  # the old deadline's reminders no longer apply
    return request


# --- access and portability packages --------------------------------------------------------

EXPORT_TYPES = ("access", "portability")
DOWNLOAD_SALT = "privacy.package"


def complete_with_package(request: PrivacyRequest) -> PrivacyRequest:
    """Build the package, keep it as evidence (its SHA-256, row counts per source, redactions),
    and complete the request. A failure leaves the request `failed` (retryable), never
    `completed`."""
    from apps.audit.services import store_evidence
    from apps.privacy.connectors import Pending, forget_results
    from apps.privacy.package import build_package

    try:
        package = build_package(request)
    except Pending:
        return request  # a connector answers by callback, which queues this again
    except Exception as exc:
        transition(request, Status.FAILED, note=f"package failed: {type(exc).__name__}: {exc}")
        raise
    forget_results(request)
    with transaction.atomic():
        request = locked_request(request)
        # The evidence and the stored manifest name the subject by key only: they outlive an
        # erasure of the subject (the file in the package names them; it is deleted then).
        stored = {**package.manifest, "subject": {"key": request.subject_key}}
        evidence = store_evidence(
            tenant_id=request.tenant_id,
            kind="privacy_package",
            content={"request": request.pk, "sha256": package.sha256, "manifest": stored},
            period=timezone.now().date().isoformat(),
        )
        PrivacyRequest.objects.filter(pk=request.pk).update(
            package_path=str(package.path),
            package_sha256=package.sha256,
            package_manifest=stored,
            evidence=evidence,
        )
        request.refresh_from_db()
        request = complete(
            request,
            note=f"package of {package.manifest['rows']} rows, sha256 {package.sha256[:12]}",
        )
    return request


def download_token(request: PrivacyRequest) -> str:
    from django.core import signing

    return signing.dumps(
        {"request": request.pk, "sha256": request.package_sha256}, salt=DOWNLOAD_SALT
    )


def package_for_token(token: str) -> PrivacyRequest:
    """The request a download link is for; signing.BadSignature / SignatureExpired otherwise."""
    from django.core import signing

    data = signing.loads(token, salt=DOWNLOAD_SALT, max_age=settings.PRIVACY_DOWNLOAD_DAYS * 86400)
    from apps.tenancy.rls import all_tenants_context

    with all_tenants_context():
        request = PrivacyRequest.objects.get(pk=data["request"])
    if request.package_sha256 != data["sha256"]:
        raise signing.BadSignature("the package was rebuilt; ask for a new link")
    return request
