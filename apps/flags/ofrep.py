"""OpenFeature Remote Evaluation Protocol (OFREP v1) and flagd HTTP sync.

Plain Django views, not DRF: this is the hottest path of the portal, and its wire format is the
OFREP spec's (open-feature/protocol service/openapi.yaml), not the portal's problem documents:
- 200 `{key, value, reason, variant, metadata}`;
- 400 `{key, errorCode, errorDetails}` with PARSE_ERROR, TARGETING_KEY_MISSING,
  INVALID_CONTEXT or GENERAL;
- 404 `{key, errorCode: FLAG_NOT_FOUND, errorDetails}`;
- 401 and 403 without a body; 429 with Retry-After.
Bulk answers carry an ETag; a matching If-None-Match gets 304.

Authentication: an environment key (`ofk_…`) as `Authorization: Bearer` or `X-API-Key`. Nothing
here touches the database in steady state (apps/flags/runtime.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.flags import events, runtime, stats
from apps.flags.evaluation import evaluate

JSON = "application/json"


class _Bad(Exception):
    def __init__(self, code: str, details: str):
        super().__init__(details)
        self.code = code
        self.details = details


def _raw(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type=JSON if body else None)
    if not body:
        del response["Content-Type"]
    for name, value in (headers or {}).items():
        response[name] = value
    response.ofrep_raw = True  # the problem-document middleware leaves it alone
    return response


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    return _raw(status, json.dumps(payload, separators=(",", ":")).encode(), headers)


def _key_from(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.META.get("HTTP_X_API_KEY", "").strip()


def _authenticate(request: HttpRequest) -> tuple[runtime.Snapshot | None, str, HttpResponse | None]:
    """(snapshot, key prefix, None), or (None, "", the refusal: 401 or 429)."""
    raw = _key_from(request)
    found = runtime.authenticate(raw) if raw else None
    if found is None:
        return None, "", _raw(401, headers={"WWW-Authenticate": 'Bearer realm="ofrep"'})
    snapshot, prefix = found
    retry_after = runtime.limiter.hit(prefix, settings.FLAGS_OFREP_RATE_PER_MINUTE)
    if retry_after:
        return None, "", _raw(429, headers={"Retry-After": str(retry_after)})
    stats.maybe_flush()
    return snapshot, prefix, None


def _context(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Bad("PARSE_ERROR", f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise _Bad("PARSE_ERROR", "The body must be a JSON object with a 'context'.")
    context = body.get("context", {})
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise _Bad("INVALID_CONTEXT", "'context' must be a JSON object.")
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise _Bad("INVALID_CONTEXT", "'targetingKey' must be a string.")
    return context


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _evaluation(
    snapshot: runtime.Snapshot, key: str, context: dict[str, Any]
) -> tuple[bool, bytes]:
    """One flag's OFREP result as JSON bytes, and whether it succeeded; KeyError if unknown.

    A success depends only on the flag, its variant and the reason within one configuration
    version, so its JSON is built once per snapshot and reused (bulk answers are mostly these).
    """
    flag = snapshot.flags[key]
    if key in snapshot.needs_targeting_key and not context.get("targetingKey"):
        return False, _dumps(
            {
                "key": key,
                "errorCode": "TARGETING_KEY_MISSING",
                "errorDetails": f"Flag {key!r} splits users by targetingKey; send one.",
            }
        )
    result = evaluate(flag, context)
    stats.record(
        snapshot.tenant_id, snapshot.environment_id, snapshot.flag_ids[key], result.variant
    )
    if result.error_code:
        return False, _dumps(
            {"key": key, "errorCode": result.error_code, "errorDetails": result.error_details}
        )
    cache_key = (key, result.variant, result.reason)
    fragment = snapshot.fragments.get(cache_key)
    if fragment is None:
        fragment = _dumps(
            {
                "key": key,
                "value": result.value,
                "reason": result.reason,
                "variant": result.variant,
                "metadata": flag.metadata,
            }
        )
        snapshot.fragments[cache_key] = fragment
    return True, fragment


@csrf_exempt
def evaluate_flag(request: HttpRequest, key: str) -> HttpResponse:
    if request.method != "POST":
        return _raw(405, headers={"Allow": "POST"})
    snapshot, _prefix, refusal = _authenticate(request)
    if refusal is not None:
        return refusal
    try:
        context = _context(request)
    except _Bad as bad:
        return _json(400, {"key": key, "errorCode": bad.code, "errorDetails": bad.details})
    try:
        succeeded, fragment = _evaluation(snapshot, key, context)
    except KeyError:
        return _json(
            404,
            {
                "key": key,
                "errorCode": "FLAG_NOT_FOUND",
                "errorDetails": f"No flag {key!r} in environment {snapshot.environment_key!r}.",
            },
        )
    return _raw(200 if succeeded else 400, fragment)


@csrf_exempt
def evaluate_flags(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _raw(405, headers={"Allow": "POST"})
    snapshot, prefix, refusal = _authenticate(request)
    if refusal is not None:
        return refusal
    revalidating = _if_none_match(request)
    cache_key = (prefix, request.get_host(), request.body)
    if revalidating:
        known = snapshot.bulk_etags.get(cache_key)
        if known is not None and known in revalidating:
            return _raw(304, headers={"ETag": known})
    try:
        context = _context(request)
    except _Bad as bad:
        return _json(400, {"errorCode": bad.code, "errorDetails": bad.details})
    fragments = [_evaluation(snapshot, key, context)[1] for key in snapshot.flags]
    connections = _dumps(events.refresh_connections(request, snapshot, prefix))
    body = (
        b'{"flags":['
        + b",".join(fragments)
        + b'],"metadata":'
        + snapshot.bulk_metadata
        + b',"refreshConnections":'
        + connections
        + b',"eventStreams":'
        + connections
        + b"}"
    )
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    snapshot.remember_bulk_etag(cache_key, etag)
    if etag in revalidating:
        return _raw(304, headers={"ETag": etag})
    return _raw(200, body, headers={"ETag": etag})


def _if_none_match(request: HttpRequest) -> list[str]:
    header = request.META.get("HTTP_IF_NONE_MATCH", "")
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def flagd_sync(request: HttpRequest, environment: str) -> HttpResponse:
    """The environment as a flagd flag file, for flagd's HTTP sync (`--uri https://…json`)."""
    if request.method not in ("GET", "HEAD"):
        return _raw(405, headers={"Allow": "GET, HEAD"})
    raw = _key_from(request)
    found = runtime.authenticate(raw) if raw else None
    if found is None:
        return _raw(401, headers={"WWW-Authenticate": 'Bearer realm="flagd-sync"'})
    snapshot, _prefix = found
    if snapshot.environment_key != environment:
        return _raw(403)
    headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
    if snapshot.portal_only:
        headers["X-Opsportal-Portal-Only-Flags"] = ",".join(snapshot.portal_only)
    if snapshot.etag in _if_none_match(request):
        return _raw(304, headers=headers)
    return _raw(200, snapshot.document_bytes, headers=headers)
