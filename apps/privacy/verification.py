"""Identity verification of a data subject: a one-time code mailed by a worker (only its HMAC
is stored; codes expire and allow a few tries, wrong ones counted), or a privacy officer's manual
verification with a note (`services.transition` to `verified`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.services import enqueue
from apps.privacy.models import PrivacyRequest, Status, VerificationCode
from apps.privacy.services import InvalidTransition, allowed_transitions, locked_request, transition

CODE_DIGITS = 6


class VerificationFailed(Exception):
    pass


def _code_hash(request: PrivacyRequest, code: str) -> str:
    key = f"{settings.SECRET_KEY}:privacy-code:{request.pk}".encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


def send_verification_code(request: PrivacyRequest) -> PrivacyRequest:
    """Move the request to identity_pending and have a worker mail the subject a one-time code
    (`issue_code`, through the outbox: the code itself is never stored, only its hash)."""
    if not request.subject_email:
        raise ValidationError({"subject_email": "Code verification needs the subject's email."})
    with transaction.atomic():
        if request.status == Status.RECEIVED:
            request = transition(request, Status.IDENTITY_PENDING, note="code requested")
        elif request.status != Status.IDENTITY_PENDING:
            raise InvalidTransition(request.status, Status.IDENTITY_PENDING, [])
        enqueue("privacy.issue_code", request_id=request.pk)
    return request


def issue_code(request: PrivacyRequest, now: datetime | None = None) -> None:
    """Create a new code (earlier ones stop working) and mail it. Run by the worker; a mail
    failure raises, and the task is retried with a fresh code."""
    now = now or timezone.now()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    with transaction.atomic():
        VerificationCode.objects.filter(request=request, used_at__isnull=True).update(used_at=now)
        VerificationCode.objects.create(
            tenant_id=request.tenant_id,
            request=request,
            code_hash=_code_hash(request, code),
            expires_at=now + timedelta(minutes=settings.PRIVACY_CODE_TTL_MINUTES),
        )
    send_mail(
        "Confirm your privacy request",
        f"Your confirmation code is {code}. It expires in {settings.PRIVACY_CODE_TTL_MINUTES} "
        "minutes. If you did not ask us about your personal data, ignore this message.",
        None,
        [request.subject_email],
    )


def verify_code(request: PrivacyRequest, code: str, now: datetime | None = None) -> PrivacyRequest:
    """Check a code: expired, used up (PRIVACY_CODE_MAX_ATTEMPTS) or wrong codes fail, and a
    wrong one still counts as an attempt; a right one verifies the request."""
    now = now or timezone.now()
    with transaction.atomic():
        current = (
            VerificationCode.objects.select_for_update()
            .filter(request=request, used_at__isnull=True)
            .order_by("-created_at")
            .first()
        )
        problem = _code_problem(request, current, code, now)
        if problem is None:
            current.attempts += 1
            current.used_at = now
            current.save(update_fields=["attempts", "used_at"])
            request = locked_request(request)
            if request.status != Status.IDENTITY_PENDING:
                raise InvalidTransition(
                    request.status, Status.VERIFIED, allowed_transitions(request)
                )
            request.status = Status.VERIFIED
            request.verified_at = now
            request.verification_method = "email code"
            request.last_note = "identity verified by a one-time code"
            request.version = F("version") + 1
            request.save(audit_action="privacy_request.verified")
            request.refresh_from_db()
    if problem is not None:
        raise VerificationFailed(problem)
    return request


def _code_problem(request, current, code: str, now: datetime) -> str | None:
    """Why the code does not verify, or None; a wrong guess is counted (and committed)."""
    if current is None:
        return "No code is outstanding: ask for a new one."
    if current.expires_at <= now:
        return "The code has expired: ask for a new one."
    if current.attempts >= settings.PRIVACY_CODE_MAX_ATTEMPTS:
        return "Too many attempts: ask for a new code."
    if not hmac.compare_digest(current.code_hash, _code_hash(request, code.strip())):
        current.attempts += 1
        current.save(update_fields=["attempts"])
        left = settings.PRIVACY_CODE_MAX_ATTEMPTS - current.attempts
        return f"Wrong code; {left} attempt(s) left."
    return None
