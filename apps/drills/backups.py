"""Backup files in BACKUP_DIR: taking one, recording it, re-checking it, and retention."""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record_event
from apps.drills.models import Backup, BackupStatus
from apps.drills.targets import Target
from apps.drills.verify import SourceManifest

logger = logging.getLogger(__name__)


@dataclass
class TakenBackup:
    backup: Backup
    manifest: SourceManifest


def backup_dir() -> Path:
    path = Path(settings.BACKUP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def new_backup_path(target: Target) -> Path:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%fZ")
    suffix = "sqlite3" if target.engine == "sqlite" else "dump"
    slug = target.key.replace(":", "-")
    return backup_dir() / f"{slug}-{target.dbname or 'db'}-{stamp}.{suffix}"


def take_backup(backend, target: Target, *, tenant_id: int | None, drill_id: int | None):
    """Back up the target into BACKUP_DIR and record it with its SHA-256 and the manifest of
    what it holds. A failed backup leaves no file and a `failed` row (visible, not lost)."""
    path = new_backup_path(target)
    started = time.monotonic()
    try:
        manifest = backend.backup(path)
        sha256 = file_sha256(path)
    except BaseException as exc:
        path.unlink(missing_ok=True)
        Backup.objects.create(
            owner_tenant_id=tenant_id,
            drill_id=drill_id,
            target_key=target.key,
            engine=target.engine,
            path=str(path),
            snapshot_at=timezone.now(),
            duration_seconds=time.monotonic() - started,
            status=BackupStatus.FAILED,
            error=" ".join(str(exc).split())[:2000],
        )
        raise
    with transaction.atomic():
        backup = Backup.objects.create(
            owner_tenant_id=tenant_id,
            drill_id=drill_id,
            target_key=target.key,
            engine=target.engine,
            path=str(path),
            size_bytes=path.stat().st_size,
            sha256=sha256,
            snapshot_at=manifest.snapshot_at,
            duration_seconds=round(time.monotonic() - started, 3),
            manifest=manifest.to_json(),
        )
        record_event(
            tenant_id=tenant_id,
            action="backup.taken",
            target=backup,
            after={"path": str(path), "size_bytes": backup.size_bytes, "sha256": sha256},
        )
    logger.info(
        "backup taken",
        extra={"target": target.label, "path": str(path), "bytes": backup.size_bytes},
    )
    return TakenBackup(backup=backup, manifest=manifest)


def latest_backup(target_key: str) -> Backup | None:
    return (
        Backup.objects.filter(target_key=target_key, status=BackupStatus.OK)
        .order_by("-snapshot_at")
        .first()
    )


def check_file(backup: Backup) -> str | None:
    """Re-check the stored file against its recorded SHA-256; the problem, or None. A corrupt
    or missing file is marked so, and never restored."""
    path = Path(backup.path)
    if not path.is_file():
        Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.MISSING)
        return f"backup file {path} is missing"
    actual = file_sha256(path)
    if actual != backup.sha256:
        Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.CORRUPT)
        record_event(
            tenant_id=backup.owner_tenant_id,
            action="backup.corrupt",
            target=backup,
            after={"recorded_sha256": backup.sha256, "actual_sha256": actual},
        )
        return (
            f"backup file {path.name} is corrupt: SHA-256 {actual} does not match the recorded "
            f"{backup.sha256}; nothing was restored"
        )
    return None


def free_bytes(path: Path | None = None) -> int:
    return shutil.disk_usage(path or backup_dir()).free


def purge_expired(now=None) -> dict:
    """Delete backup files older than BACKUP_RETENTION_DAYS; the newest good backup of each
    target is always kept. The rows stay (marked expired) as the record of what existed."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.BACKUP_RETENTION_DAYS)
    keep = set()
    for key in Backup.objects.values_list("target_key", flat=True).distinct():
        latest = latest_backup(key)
        if latest:
            keep.add(latest.pk)
    removed = 0
    freed = 0
    expired = Backup.objects.filter(
        snapshot_at__lt=cutoff,
        status__in=[BackupStatus.OK, BackupStatus.CORRUPT, BackupStatus.FAILED],
    ).exclude(pk__in=keep)
    for backup in expired:
        path = Path(backup.path)
        if path.is_file():
            freed += path.stat().st_size
            path.unlink()
        removed += 1
        Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.EXPIRED)
    return {"expired": removed, "bytes_freed": freed}
