"""Webhook connectors: other systems that answer for their own personal data.

The portal POSTs JSON to the connector's URL, signed like the alert webhooks
(`X-Opsportal-Timestamp`, `X-Opsportal-Signature: v1=<HMAC-SHA-256 of "<timestamp>.<body>">`
with the connector's secret), with an `Idempotency-Key` per call so retries can be dropped:

    {"action": "access" | "preview" | "erase" | "rectify", "request_id": 12, "call_id": 5,
     "subject": {"email": "...", "external_id": "..."}, "changes": {...},
     "callback_url": "https://<portal>/api/v1/privacy/connectors/callback/<token>"}

It answers 200 with the result, or 202 and later POSTs the result to `callback_url`, signed the
same way with the same secret. Results:
- access: `{"rows": [{...}], "fields": {"field": "category", ...}}` (unlisted fields count as
  `content`; `secret` ones are dropped);
- preview: `{"rows": N, "fields": {"field": {"strategy": "...", "values": N}}}`;
- erase: `{"rows": N, "retained": {"field": "legal-hold reason"}}`;
- rectify: `{"rows": N}`.

Any other status, a timeout, a malformed body or a callback with a bad signature is an error:
the request becomes `failed` (retryable), never `completed`. Connectors hold their own backups,
so erasure replays after a portal restore do not call them (`replayable = False`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator

import httpx
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from apps.alerts.validation import check_resolved_target
from apps.privacy.identity import Identity
from apps.privacy.masking import SECRET, FieldSpec
from apps.privacy.models import ConnectorCall, PrivacyRequest, WebhookConnector
from apps.privacy.sources import Outcome, Preview, Source, SourceError
from opsportal import crypto

TIMESTAMP_HEADER = "X-Opsportal-Timestamp"
SIGNATURE_HEADER = "X-Opsportal-Signature"
CALLBACK_SALT = "privacy.connector-callback"
CALLBACK_MAX_AGE = 7 * 86400
SIGNATURE_TOLERANCE = 300
USER_AGENT = "opsportal-privacy/1"


class Pending(Exception):
    """The connector accepted the call and will answer by callback."""


def connector_sources(tenant) -> list[ConnectorSource]:
    connectors = WebhookConnector.objects.for_tenant(tenant).filter(enabled=True)
    return [ConnectorSource(connector) for connector in connectors]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def callback_token(call: ConnectorCall) -> str:
    return signing.dumps({"call": call.pk}, salt=CALLBACK_SALT)


def callback_url(call: ConnectorCall) -> str:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return f"{base}/api/v1/privacy/connectors/callback/{callback_token(call)}"


class ConnectorSource(Source):
    kind = "webhook"
    replayable = False

    def __init__(self, connector: WebhookConnector):
        self.connector = connector
        self.name = connector.source_name

    def field_specs(self) -> dict[str, FieldSpec]:
        return {}  # the connected system declares its own fields in each answer

    # --- calls ------------------------------------------------------------------------------

    def _call(self, request: PrivacyRequest, action: str, who: Identity, changes=None) -> dict:
        """The connector's result for this request and action: a stored one (an earlier answer
        or a callback), or a new call. Pending when the connector answers by callback."""
        call, _ = ConnectorCall.objects.get_or_create(
            tenant_id=request.tenant_id, request=request, connector=self.connector, action=action
        )
        if call.status == ConnectorCall.DONE:
            return call.result
        if call.status == ConnectorCall.PENDING:
            raise Pending(f"{self.name}: waiting for the connector's callback")
        body = json.dumps(
            {
                "action": action,
                "request_id": request.pk,
                "call_id": call.pk,
                "subject": {"email": who.email, "external_id": who.external_id},
                "changes": changes or {},
                "callback_url": callback_url(call),
            },
            separators=(",", ":"),
        ).encode()
        secret = crypto.decrypt(self.connector.secret_ciphertext)
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": f"privacy-call-{call.pk}",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature(secret, stamp, body),
        }
        try:
            check_resolved_target(self.connector.url)
            response = httpx.post(
                self.connector.url,
                content=body,
                headers=headers,
                timeout=self.connector.timeout_seconds,
                follow_redirects=False,
            )
        except (httpx.HTTPError, OSError, PermissionError) as exc:
            self._failed(call, type(exc).__name__, str(exc))
        if response.status_code == 202:
            # A fast connector may have called back already: only a call still waiting to be
            # sent becomes pending, never one the callback completed.
            ConnectorCall.objects.filter(
                pk=call.pk, status__in=(ConnectorCall.NEW, ConnectorCall.FAILED)
            ).update(status=ConnectorCall.PENDING, error="")
            call.refresh_from_db()
            if call.status == ConnectorCall.DONE:
                return call.result
            raise Pending(f"{self.name}: the connector will answer by callback")
        if response.status_code != 200:
            self._failed(call, f"HTTP {response.status_code}", response.text[:200])
        try:
            result = response.json()
        except ValueError:
            self._failed(call, "the answer is not JSON", "")
        return record_result(call, result)

    def _failed(self, call: ConnectorCall, reason: str, detail: str):
        """The reason goes into the request's outcome for good, so it names no data; what the
        connector said is kept on the call (cleared with its results)."""
        call.status, call.error = ConnectorCall.FAILED, f"{reason}: {detail}"[:1000]
        call.save(update_fields=["status", "error"])
        raise SourceError(f"{self.name}: {reason}")

    # --- the five questions -----------------------------------------------------------------

    def export(self, tenant, who: Identity, context) -> Iterator[dict]:
        yield from self._call(context.request, "access", who)["rows"]  # secrets already dropped

    def preview(self, tenant, who: Identity, context) -> Preview:
        result = self._call(context.request, "preview", who)
        return Preview(
            source=self.name, kind=self.kind, rows=result["rows"], fields=result.get("fields", {})
        )

    def erase(self, tenant, who: Identity, context) -> Outcome:
        result = self._call(context.request, "erase", who)
        retained = result.get("retained", {})
        return Outcome(
            source=self.name,
            status="retained" if retained and not result["rows"] else "done",
            rows=result["rows"],
            retained=retained,
            detail="erased by the connected system",
        )

    def rectify(self, tenant, who: Identity, changes: dict, context) -> Outcome:
        result = self._call(context.request, "rectify", who, changes=changes)
        return Outcome(
            source=self.name,
            status="done",
            rows=result["rows"],
            strategies=dict.fromkeys(changes, "set"),
        )

    def replay(self, tenant, key_hashes: set[str], context) -> int:
        return 0


def _count(value) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, list):
        return len(value)
    return 0


def _category(value) -> str:
    if isinstance(value, dict):
        value = value.get("category", "content")
    return str(value) if value else "content"


def cleaned(action: str, result: dict) -> dict:
    """What is kept of an answer until it is used: for access, the rows without the fields the
    connector says are secret; for the others, counts and field treatments only."""
    if action == "access":
        categories = result.get("fields") if isinstance(result.get("fields"), dict) else {}
        secret = {name for name, value in categories.items() if _category(value) == SECRET}
        rows = result.get("rows") if isinstance(result.get("rows"), list) else []
        return {
            "rows": [
                {k: v for k, v in row.items() if k not in secret}
                for row in rows
                if isinstance(row, dict)
            ],
            "fields": {name: _category(value) for name, value in categories.items()},
        }
    kept: dict = {"rows": _count(result.get("rows"))}
    if action == "preview" and isinstance(result.get("fields"), dict):
        kept["fields"] = {
            str(name)[:100]: {
                "strategy": str(value.get("strategy", ""))[:40],
                "values": _count(value.get("values")),
            }
            for name, value in result["fields"].items()
            if isinstance(value, dict)
        }
    if action == "erase" and isinstance(result.get("retained"), dict):
        kept["retained"] = {str(k)[:100]: str(v)[:300] for k, v in result["retained"].items()}
    return kept


def record_result(call: ConnectorCall, result) -> dict:
    if not isinstance(result, dict):
        call.status, call.error = ConnectorCall.FAILED, "the answer is not a JSON object"
        call.save(update_fields=["status", "error"])
        raise SourceError(f"connector.{call.connector.name}: the answer is not a JSON object")
    call.status, call.error = ConnectorCall.DONE, ""
    call.result = cleaned(call.action, result)
    call.answered_at = timezone.now()
    call.save(update_fields=["status", "error", "result", "answered_at"])
    return call.result


# Answers that are personal (access rows) or only good for one dry run are asked again next time.
ASKED_AGAIN = ("access", "preview")


def forget_results(request: PrivacyRequest) -> None:
    """Once an answer has been used (or the request failed or closed), clear what connectors
    said: an access answer holds personal data, a dry run's counts go stale. Those calls are made
    again if the request runs again; an erasure or rectification that was done is not redone."""
    calls = ConnectorCall.objects.filter(request=request)
    calls.filter(action__in=ASKED_AGAIN).update(status=ConnectorCall.NEW, result={}, error="")
    calls.exclude(action__in=ASKED_AGAIN).update(error="")


def forget_subject(requests) -> int:
    """During an erasure: clear every connector answer and error kept for the subject's
    requests (`requests`, a queryset), whatever their state."""
    return ConnectorCall.objects.filter(request__in=requests).update(result={}, error="")


class CallbackRefused(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def receive_callback(token: str, body: bytes, headers) -> ConnectorCall:
    """A connector's late answer: the token names the call, the signature proves the sender."""
    try:
        data = signing.loads(token, salt=CALLBACK_SALT, max_age=CALLBACK_MAX_AGE)
    except signing.SignatureExpired:
        raise CallbackRefused(410, "This callback link has expired.") from None
    except signing.BadSignature:
        raise CallbackRefused(404, "Unknown callback.") from None
    call = (
        ConnectorCall.objects.select_related("connector", "request")
        .filter(pk=data.get("call"))
        .first()
    )
    if call is None:
        raise CallbackRefused(404, "Unknown callback.")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    secret = crypto.decrypt(call.connector.secret_ciphertext)
    if not _STAMP.fullmatch(stamp) or abs(time.time() - int(stamp)) > SIGNATURE_TOLERANCE:
        raise CallbackRefused(401, "Missing or stale X-Opsportal-Timestamp.")
    expected = signature(secret, stamp, body).encode()
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
        raise CallbackRefused(401, "Bad X-Opsportal-Signature.")
    try:
        result = json.loads(body)
    except ValueError:
        raise CallbackRefused(400, "The body is not JSON.") from None
    if not isinstance(result, dict):
        raise CallbackRefused(400, "The body must be a JSON object.")
    if result.get("call_id") != call.pk:
        # The signature covers the body; the body must name this call, so a signed answer to
        # one call cannot be replayed to another.
        raise CallbackRefused(400, "The body's call_id does not name this call.")
    with transaction.atomic():
        call = ConnectorCall.objects.select_for_update().get(pk=call.pk)
        if call.status == ConnectorCall.DONE:
            return call  # a retried callback: the first answer stands
        if call.status != ConnectorCall.PENDING or call.request.status != "in_progress":
            raise CallbackRefused(409, "This call is not waiting for an answer.")
        record_result(call, result)
    return call


_STAMP = re.compile(r"[0-9]{1,12}")
