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
import time
from collections.abc import Iterator

import httpx
from django.conf import settings
from django.core import signing
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
            self._failed(call, f"{type(exc).__name__}: {exc}")
        if response.status_code == 202:
            call.status, call.error = ConnectorCall.PENDING, ""
            call.save(update_fields=["status", "error"])
            raise Pending(f"{self.name}: the connector will answer by callback")
        if response.status_code != 200:
            self._failed(call, f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            result = response.json()
        except ValueError:
            self._failed(call, "the answer is not JSON")
        return record_result(call, result)

    def _failed(self, call: ConnectorCall, error: str):
        call.status, call.error = ConnectorCall.FAILED, error[:1000]
        call.save(update_fields=["status", "error"])
        raise SourceError(f"{self.name}: {error}")

    # --- the five questions -----------------------------------------------------------------

    def export(self, tenant, who: Identity, context) -> Iterator[dict]:
        result = self._call(context.request, "access", who)
        categories = result.get("fields") or {}
        for row in result.get("rows") or []:
            if isinstance(row, dict):
                yield {k: v for k, v in row.items() if categories.get(k, "content") != SECRET}

    def preview(self, tenant, who: Identity, context) -> Preview:
        result = self._call(context.request, "preview", who)
        fields = result.get("fields") if isinstance(result.get("fields"), dict) else {}
        return Preview(
            source=self.name, kind=self.kind, rows=_count(result.get("rows")), fields=fields
        )

    def erase(self, tenant, who: Identity, context) -> Outcome:
        result = self._call(context.request, "erase", who)
        retained = result.get("retained") if isinstance(result.get("retained"), dict) else {}
        return Outcome(
            source=self.name,
            status="retained" if retained and not _count(result.get("rows")) else "done",
            rows=_count(result.get("rows")),
            retained={str(k): str(v) for k, v in retained.items()},
            detail="erased by the connected system",
        )

    def rectify(self, tenant, who: Identity, changes: dict, context) -> Outcome:
        result = self._call(context.request, "rectify", who, changes=changes)
        return Outcome(
            source=self.name,
            status="done",
            rows=_count(result.get("rows")),
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


def record_result(call: ConnectorCall, result) -> dict:
    if not isinstance(result, dict):
        call.status, call.error = ConnectorCall.FAILED, "the answer is not a JSON object"
        call.save(update_fields=["status", "error"])
        raise SourceError(f"connector.{call.connector.name}: the answer is not a JSON object")
    call.status, call.error, call.result = ConnectorCall.DONE, "", result
    call.answered_at = timezone.now()
    call.save(update_fields=["status", "error", "result", "answered_at"])
    return result


def forget_results(request: PrivacyRequest) -> None:
    """Clear what connectors answered (it may hold personal data) once it has been used."""
    ConnectorCall.objects.filter(request=request).exclude(result={}).update(result={})


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
    call = ConnectorCall.objects.select_related("connector").filter(pk=data.get("call")).first()
    if call is None:
        raise CallbackRefused(404, "Unknown callback.")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    secret = crypto.decrypt(call.connector.secret_ciphertext)
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > SIGNATURE_TOLERANCE:
        raise CallbackRefused(401, "Missing or stale X-Opsportal-Timestamp.")
    if not hmac.compare_digest(given, signature(secret, stamp, body)):
        raise CallbackRefused(401, "Bad X-Opsportal-Signature.")
    if call.status == ConnectorCall.DONE:
        return call  # a retried callback: the first answer stands
    try:
        result = json.loads(body)
    except ValueError:
        raise CallbackRefused(400, "The body is not JSON.") from None
    if not isinstance(result, dict):
        raise CallbackRefused(400, "The body must be a JSON object.")
    record_result(call, result)
    return call
