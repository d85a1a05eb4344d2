"""The access/portability package: a ZIP with, per source, a JSON and a CSV file of the subject's
rows, and `manifest.json` (request, subject, sources, row counts, SHA-256 of each file,
redactions by kind, generation time).

Built streaming: rows come from the database in chunks (`iterator`) and are written straight into
the ZIP entries, hashing the bytes as they go, so memory does not grow with the number of rows.
Fields of category `secret` are never selected; every string is scanned by
`redaction.scrub_value` before it is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from apps.privacy import redaction
from apps.privacy.models import PrivacyRequest
from apps.privacy.rights import context_for, identity_of
from apps.privacy.sources import sources_for

CHUNK = 2000
# One encoder (json.dumps would build one per row); values JSON has no type for (uuid, inet,
# interval, bytes ...) are written as their text.
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


@dataclass
class Package:
    path: Path
    sha256: str
    manifest: dict


class _HashingWriter(io.RawIOBase):
    """Text written to a ZIP entry, hashed on the way."""

    def __init__(self, target):
        self.target = target
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.digest.update(data)
        self.target.write(data)
        return len(data)


def _clean(value, redactions: Counter):
    """A value as the package holds it: dates and decimals as text, every string scrubbed. A
    date's ISO text cannot match a redaction pattern (no run of more than 8 digits, none of
    their words), so it is not scanned."""
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, Decimal):
        value = str(value)
    return redaction.scrub_value(value, redactions)


def package_dir() -> Path:
    path = Path(settings.EVIDENCE_DIR) / "privacy-packages"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_package(request: PrivacyRequest) -> Package:
    """Raises connectors.Pending when a connector answers by callback (nothing is kept then),
    SourceError when a source cannot answer."""
    stamp = timezone.now()
    path = package_dir() / f"request-{request.pk}-{stamp:%Y%m%dT%H%M%S}.zip"
    redactions: Counter = Counter()
    sources_manifest = []
    context, who = context_for(request), identity_of(request)
    sources = sorted(sources_for(request.tenant), key=lambda s: s.name)
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for source in sources:
                rows = source.export(request.tenant, who, context)
                fields = source.exported_fields()
                if not fields:  # a connector names its fields in its answer
                    rows = list(rows)
                    fields = list({name: None for row in rows for name in row})
                files, count = _write_source(archive, source.name, fields, rows, redactions)
                sources_manifest.append(
                    {"source": source.name, "kind": source.kind, "rows": count, "files": files}
                )
            manifest = {
                "request": request.pk,
                "request_type": request.request_type,
                "jurisdiction": request.jurisdiction,
                "subject": {
                    "email": request.subject_email,
                    "external_id": request.subject_external_id,
                },
                "sources": sources_manifest,
                "rows": sum(s["rows"] for s in sources_manifest),
                "redactions": dict(sorted(redactions.items())),
                "generated_at": stamp.isoformat(),
            }
            archive.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return Package(path=path, sha256=digest.hexdigest(), manifest=manifest)


def _write_source(archive, name, fields, rows, redactions) -> tuple[dict, int]:
    """Stream the rows into `<name>.json` (a ZIP entry) and, at the same time, into a temporary
    CSV file on disk (a ZIP file takes one writing entry at a time); then add the CSV."""
    json_entry = archive.open(f"{name}.json", "w", force_zip64=True)
    json_hash = _HashingWriter(json_entry)
    json_text = io.TextIOWrapper(io.BufferedWriter(json_hash), encoding="utf-8", newline="")
    with tempfile.NamedTemporaryFile("w+b", suffix=".csv", dir=package_dir()) as spool:
        csv_hash = _HashingWriter(spool)
        csv_text = io.TextIOWrapper(io.BufferedWriter(csv_hash), encoding="utf-8", newline="")
        writer = csv.writer(csv_text)
        writer.writerow(fields)
        json_text.write("[")
        count = 0
        try:
            for row in rows:
                clean = {k: _clean(row.get(k), redactions) for k in fields}
                json_text.write(("," if count else "") + "\n" + _JSON.encode(clean))
                writer.writerow([_cell(clean[k]) for k in fields])
                count += 1
            json_text.write("\n]\n")
            json_text.flush()
            json_text.detach().detach()
        finally:
            # An entry left open would make closing the archive fail and hide the real error.
            json_entry.close()
        csv_text.flush()
        csv_text.detach().detach()
        spool.flush()
        archive.write(spool.name, arcname=f"{name}.csv")
    return (
        {
            f"{name}.json": json_hash.digest.hexdigest(),
            f"{name}.csv": csv_hash.digest.hexdigest(),
        },
        count,
    )


def _cell(value):
    """A CSV cell: JSON values as JSON, not as Python's repr."""
    return _JSON.encode(value) if isinstance(value, dict | list) else value


def package_files_of(request_ids: list[int]) -> list[Path]:
    """Every package file of these requests on disk, also ones no row points at any more (a
    build whose completion failed): files are named after their request."""
    directory = package_dir()
    return [path for pk in request_ids for path in directory.glob(f"request-{pk}-*.zip")]


ORPHAN_AGE_SECONDS = 3600


def sweep_orphans(now: float | None = None) -> int:
    """Delete package files no request points at (a build killed midway, or one whose
    completion failed) and CSV spools left by a killed build, once an hour old."""
    import time

    now = now or time.time()
    directory = package_dir()
    referenced = {
        Path(path).name
        for path in PrivacyRequest._base_manager.exclude(package_path="").values_list(
            "package_path", flat=True
        )
    }
    removed = 0
    for path in [*directory.glob("request-*.zip"), *directory.glob("*.csv")]:
        if path.name in referenced or now - path.stat().st_mtime < ORPHAN_AGE_SECONDS:
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed
