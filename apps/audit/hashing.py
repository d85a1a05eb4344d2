"""The canonical serialisation and hash of an audit event (shared by writer and verifier)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

GENESIS_HASH = "0" * 64


def to_json_value(value: Any) -> Any:
    """Normalise Python values (dates, decimals, UUIDs) to what the JSON column will return."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_fields(event) -> dict[str, Any]:
    return {
        "chain": event.chain,
        "seq": event.seq,
        "tenant_id": event.tenant_id,
        "actor_user_id": event.actor_user_id,
        "actor_token_id": event.actor_token_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "ip": event.ip,
        "created_at": event.created_at.isoformat(timespec="microseconds"),
    }


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(fields)).hexdigest()


def sha256_of(content: Any) -> str:
    return hashlib.sha256(canonical(to_json_value(content))).hexdigest()
