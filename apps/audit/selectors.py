"""Reads of the audit trail: chain verification and export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from apps.audit.hashing import GENESIS_HASH, event_fields, event_hash
from apps.audit.models import AuditChain, AuditEvent


@dataclass
class VerificationResult:
    verified: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chains(checkpoint: Path | None = None) -> VerificationResult:
    """Recompute every chain; stop each chain at its first broken event and name it."""
    result = VerificationResult()
    # Heads are read before events: a chain that grows meanwhile ends past its head, which is
    # fine as long as the event at the head's position still has the head's hash.
    heads = {c.key: c for c in AuditChain.objects.all()}
    keys = set(AuditEvent.objects.order_by().values_list("chain", flat=True).distinct())
    for key in sorted(keys | set(heads)):  # a chain whose events were all deleted is still named
        prev_hash, expected_seq = GENESIS_HASH, 1
        head = heads.get(key)
        hash_at_head = None
        events = AuditEvent.objects.filter(chain=key).order_by("seq").iterator(chunk_size=2000)
        for event in events:
            if event.seq != expected_seq:
                result.problems.append(
                    f"chain {key}: event #{expected_seq} is missing (found #{event.seq}, "
                    f"id {event.pk})"
                )
                break
            if event.prev_hash != prev_hash:
                result.problems.append(
                    f"chain {key}: event #{event.seq} (id {event.pk}) does not link to the "
                    f"previous event"
                )
                break
            if event_hash(prev_hash, event_fields(event)) != event.hash:
                result.problems.append(
                    f"chain {key}: event #{event.seq} (id {event.pk}, {event.action}) was "
                    f"altered: its hash does not match its content"
                )
                break
            prev_hash, expected_seq = event.hash, expected_seq + 1
            result.verified += 1
            if head and event.seq == head.last_seq:
                hash_at_head = event.hash
        else:
            last_seq = expected_seq - 1
            if head and last_seq < head.last_seq:
                result.problems.append(
                    f"chain {key}: head says #{head.last_seq} but the chain ends at "
                    f"#{last_seq} (events were removed)"
                )
            elif head and head.last_seq and hash_at_head != head.last_hash:
                result.problems.append(
                    f"chain {key}: event #{head.last_seq} does not match the chain head "
                    f"(the chain was rewritten out of band)"
                )
    if checkpoint is not None:
        result.problems.extend(_check_checkpoint(checkpoint))
    return result


def _check_checkpoint(path: Path) -> list[str]:
    document = json.loads(Path(path).read_text())
    problems = []
    for key, head in document["chains"].items():
        if head["seq"] == 0:
            continue
        event = AuditEvent.objects.filter(chain=key, seq=head["seq"]).first()
        if event is None:
            problems.append(
                f"chain {key}: event #{head['seq']} recorded in checkpoint "
                f"{document['recorded_at']} no longer exists"
            )
        elif event.hash != head["hash"]:
            problems.append(
                f"chain {key}: event #{head['seq']} (id {event.pk}) differs from checkpoint "
                f"{document['recorded_at']}: the chain was rewritten"
            )
    return problems


def export_lines(since: datetime | None, until: datetime | None) -> Iterator[str]:
    events = AuditEvent.objects.order_by("chain", "seq")
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    for event in events.iterator(chunk_size=2000):
        yield json.dumps(
            {**event_fields(event), "prev_hash": event.prev_hash, "hash": event.hash},
            sort_keys=True,
        )
