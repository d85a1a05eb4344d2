"""The report of one drill, the same shape for PostgreSQL and SQLite, for both kinds.

It is what `run_drill` prints, what a `DrillRun` stores and what the evidence artifact holds:
phases with timings, the backup used, per-table verification, every mismatch in words, the RTO
and RPO against their targets, and the verdict.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass
class Phase:
    name: str
    status: str = "ok"  # ok | failed | skipped | warning
    seconds: float = 0.0
    detail: str = ""


@dataclass
class TableCheck:
    table: str
    source_rows: int
    source_checksum: str
    shadow_rows: int | None = None
    shadow_checksum: str | None = None

    @property
    def match(self) -> bool:
        return self.shadow_rows == self.source_rows and self.shadow_checksum == self.source_checksum


@dataclass
class BackupInfo:
    path: str
    size_bytes: int
    sha256: str
    snapshot_at: datetime
    fresh: bool
    backup_id: int | None = None


@dataclass
class DrillReport:
    kind: str
    engine: str
    target: str
    started_at: datetime
    dry_run: bool = False
    rto_target_seconds: float | None = None
    rpo_target_seconds: float | None = None
    phases: list[Phase] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    tables: list[TableCheck] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    backup: BackupInfo | None = None
    shadow_database: str = ""
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    rollback: dict = field(default_factory=dict)
    error: str = ""
    canceled: bool = False
    refused: bool = False
    finished_at: datetime | None = None
    log: list[str] = field(default_factory=list)

    @property
    def rto_met(self) -> bool | None:
        if self.rto_seconds is None or self.rto_target_seconds is None:
            return None
        return self.rto_seconds <= self.rto_target_seconds

    @property
    def rpo_met(self) -> bool | None:
        if self.rpo_seconds is None or self.rpo_target_seconds is None:
            return None
        return self.rpo_seconds <= self.rpo_target_seconds

    @property
    def passed(self) -> bool:
        """Everything matched, nothing failed and the targets that apply were met."""
        if self.dry_run or self.error or self.canceled or self.refused or self.mismatches:
            return False
        if any(phase.status == "failed" for phase in self.phases):
            return False
        return self.rto_met is not False and self.rpo_met is not False

    @property
    def status(self) -> str:
        if self.refused:
            return "refused"
        if self.canceled:
            return "canceled"
        return "passed" if self.passed else "failed"

    def note(self, message: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {message}")

    @contextmanager
    def phase(self, name: str):
        """Time a phase; an exception marks it failed and propagates."""
        phase = Phase(name=name)
        self.phases.append(phase)
        began = time.monotonic()
        try:
            yield phase
        except BaseException as exc:
            phase.status = "failed"
            phase.detail = phase.detail or _one_line(exc)
            raise
        finally:
            phase.seconds = round(time.monotonic() - began, 3)

    def seconds_of(self, *names: str) -> float:
        return sum(p.seconds for p in self.phases if p.name in names)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["tables"] = [
            {**asdict(table), "match": table.match if table.shadow_rows is not None else None}
            for table in self.tables
        ]
        data.update(
            status=self.status,
            passed=self.passed,
            rto_met=self.rto_met,
            rpo_met=self.rpo_met,
            log=self.log[-500:],
        )
        return data

    @classmethod
    def from_dict(cls, data: dict) -> DrillReport:
        """A stored report (`to_dict`) back as a report, for rendering."""

        def when(value):
            return datetime.fromisoformat(value) if isinstance(value, str) else value

        backup = data.get("backup")
        return cls(
            kind=data["kind"],
            engine=data["engine"],
            target=data["target"],
            started_at=when(data["started_at"]),
            dry_run=data.get("dry_run", False),
            rto_target_seconds=data.get("rto_target_seconds"),
            rpo_target_seconds=data.get("rpo_target_seconds"),
            phases=[Phase(**p) for p in data.get("phases", [])],
            steps=data.get("steps", []),
            tables=[
                TableCheck(
                    table=t["table"],
                    source_rows=t["source_rows"],
                    source_checksum=t["source_checksum"],
                    shadow_rows=t.get("shadow_rows"),
                    shadow_checksum=t.get("shadow_checksum"),
                )
                for t in data.get("tables", [])
            ],
            mismatches=data.get("mismatches", []),
            warnings=data.get("warnings", []),
            backup=BackupInfo(**{**backup, "snapshot_at": when(backup["snapshot_at"])})
            if backup
            else None,
            shadow_database=data.get("shadow_database", ""),
            rto_seconds=data.get("rto_seconds"),
            rpo_seconds=data.get("rpo_seconds"),
            rollback=data.get("rollback", {}),
            error=data.get("error", ""),
            canceled=data.get("canceled", False),
            refused=data.get("refused", False),
            finished_at=when(data.get("finished_at")),
            log=data.get("log", []),
        )

    def render_text(self) -> str:
        """The plain-text report `run_drill` prints."""
        lines = [
            f"Drill {self.kind} on {self.target} ({self.engine})"
            + (" - DRY RUN, nothing touched" if self.dry_run else ""),
            f"Started {self.started_at:%Y-%m-%d %H:%M:%S %Z}",
        ]
        if self.steps:
            lines.append("Steps:")
            lines += [f"  {n}. {step}" for n, step in enumerate(self.steps, start=1)]
        if self.phases:
            lines.append("Phases:")
            lines += [
                f"  {p.name:<18} {p.status:<8} {p.seconds:9.2f} s  {p.detail}".rstrip()
                for p in self.phases
            ]
        if self.backup:
            b = self.backup
            lines.append(
                f"Backup: {b.path} ({b.size_bytes:,} bytes, sha256 {b.sha256}, "
                f"{'fresh' if b.fresh else 'stored'}, data as of {b.snapshot_at:%Y-%m-%d %H:%M:%S})"
            )
        if self.tables:
            lines.append("Per-table verification:")
            width = max(len(t.table) for t in self.tables)
            for t in self.tables:
                mark = "ok" if t.match else "MISMATCH"
                lines.append(
                    f"  {t.table:<{width}} rows {t.source_rows:>10,} -> "
                    f"{'-' if t.shadow_rows is None else format(t.shadow_rows, ','):>10}  "
                    f"checksum {t.source_checksum} -> {t.shadow_checksum or '-'}  {mark}"
                )
        if self.rollback:
            lines.append("Rollback rehearsal:")
            for key in ("state", "irreversible", "backward", "forward"):
                if self.rollback.get(key):
                    value = self.rollback[key]
                    lines.append(
                        f"  {key}: " + (", ".join(value) if isinstance(value, list) else str(value))
                    )
        if self.rto_seconds is not None and self.rto_target_seconds is not None:
            lines.append(
                f"RTO {self.rto_seconds:.1f} s (target {self.rto_target_seconds:.0f} s): "
                f"{'met' if self.rto_met else 'MISSED'}"
            )
        if self.rpo_seconds is not None and self.rpo_target_seconds is not None:
            lines.append(
                f"RPO {self.rpo_seconds:.1f} s (target {self.rpo_target_seconds:.0f} s): "
                f"{'met' if self.rpo_met else 'MISSED'}"
            )
        for warning in self.warnings:
            lines.append(f"Warning: {warning}")
        for mismatch in self.mismatches:
            lines.append(f"Mismatch: {mismatch}")
        if self.error:
            lines.append(f"Error: {self.error}")
        if not self.dry_run:
            lines.append(f"Result: {self.status.upper()}")
        return "\n".join(lines)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()
