"""The erasure journal: every ErasureRecord also appended, after commit, as one JSON line to a
file outside the database (PRIVACY_ERASURE_JOURNAL, default EVIDENCE_DIR/privacy/erasures.jsonl).

The records themselves live in the database they describe, so restoring the portal's database
from an older backup also takes away the records of the erasures made since. The journal keeps
them; `replay_erasures` reads both. A line holds nothing personal: the tenant, the request id,
the source, the subject keys (keyed hashes), the strategies, the status and the time. Keep the
file on a disk other than the database's and back it up with the evidence directory.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def path() -> Path:
    configured = getattr(settings, "PRIVACY_ERASURE_JOURNAL", "")
    if configured:
        return Path(configured)
    return Path(settings.EVIDENCE_DIR) / "privacy" / "erasures.jsonl"


def append(record) -> None:
    line = json.dumps(
        {
            "tenant": record.tenant_id,
            "request": record.request_id,
            "source": record.source,
            "key_hashes": record.key_hashes,
            "strategies": record.strategies,
            "status": record.status,
            "executed_at": record.executed_at.isoformat(),
        },
        sort_keys=True,
    )
    transaction.on_commit(lambda: _write(line))


def _write(line: str) -> None:
    target = path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        # The record is in the database; only a restore before the next write would miss it.
        logger.exception("could not append to the erasure journal", extra={"path": str(target)})


def entries(since: datetime) -> Iterator[dict]:
    """Journal lines of erasures executed at or after `since` (unreadable lines skipped)."""
    target = path()
    if not target.is_file():
        return
    with open(target, encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
                if datetime.fromisoformat(entry["executed_at"]) >= since:
                    yield entry
            except (ValueError, KeyError, TypeError):
                logger.warning("skipped an unreadable erasure journal line")
