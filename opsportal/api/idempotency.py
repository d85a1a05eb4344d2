"""`Idempotency-Key` for creating POSTs.

A known key replays its stored response. Otherwise the view runs and the record (with the
response) is inserted last, in the same transaction as the view's writes. A concurrent request
with the same key blocks on the unique index until the first commits, then rolls back everything
it did and replays the first response: effects are committed once. Records live 24 h (deleted by the
retention job, category idempotency-keys; an expired key is reusable).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from apps.core.models import IdempotencyRecord
from opsportal.api.problems import UnprocessableEntity

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
_KEPT_HEADERS = ("Location", "ETag", "Content-Type")


class _Rollback(Exception):
    def __init__(self, response: Response):
        self.response = response


def _request_hash(request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(request.get_full_path().encode())
    digest.update(request.body)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord, request_hash: str) -> Response:
    if record.request_hash != request_hash:
        raise UnprocessableEntity(
            f"Idempotency-Key {record.key!r} was already used with a different request body."
        )
    response = Response(record.response_body, status=record.response_status)
    for name, value in record.response_headers.items():
        if name != "Content-Type":
            response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def idempotent(view_method):
    """Decorate a DRF view's `post`/`create`: replays, conflicts and races handled once, here."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            raise UnprocessableEntity(f"{HEADER} is longer than {MAX_KEY_LENGTH} characters.")
        tenant = request.tenant
        endpoint = request.resolver_match.view_name or request.path
        request_hash = _request_hash(request)
        existing = IdempotencyRecord.objects.filter(
            tenant=tenant, endpoint=endpoint, key=key
        ).first()
        if existing is not None:
            if existing.created_at >= timezone.now() - TTL:
                return _replay(existing, request_hash)
            existing.delete()  # expired: the key may be used afresh
        try:
            with transaction.atomic():
                response = view_method(self, request, *args, **kwargs)
                if response.status_code >= 400:
                    raise _Rollback(response)
                # Claimed last, in the same transaction: a concurrent duplicate blocks on the
                # unique index here until the first commits, then fails and replays it.
                IdempotencyRecord.objects.create(
                    tenant=tenant,
                    endpoint=endpoint,
                    key=key,
                    request_hash=request_hash,
                    response_status=response.status_code,
                    response_body=response.data,
                    response_headers={
                        name: response[name] for name in _KEPT_HEADERS if name in response
                    },
                )
                return response
        except _Rollback as rollback:
            return rollback.response
        except IntegrityError:
            winner = IdempotencyRecord.objects.filter(
                tenant=tenant, endpoint=endpoint, key=key
            ).first()
            if winner is None:
                raise  # a conflict of the view's own, not a duplicate request
            return _replay(winner, request_hash)

    return wrapper
