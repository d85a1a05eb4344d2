"""backup_restore drills with real pg_dump / pg_restore / pg_amcheck on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from apps.alerts.models import Alert
from apps.audit.models import EvidenceArtifact
from apps.drills import engine, services
from apps.drills.models import Backup, BackupStatus, DrillRun, RunStatus, TargetKind
from apps.drills.targets import portal_target
from apps.slo.models import Service
from tests.drills.conftest import shadow_databases

# Most drills here need no committed rows of their own (pg_dump reads what migrations committed:
# the rule catalog, schedules, permissions), so they run inside the test's transaction; the ones
# whose data or subprocess must be visible to another session are transactional.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
transactional = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def populated(tenant):
    """A few hundred rows in several tables, committed (pg_dump reads in its own session)."""
    for n in range(120):
        Service.objects.create(tenant=tenant, name=f"svc-{n}", owner=f"team {n % 7} - ünïcode")
    return tenant


@transactional
def test_drill_on_a_populated_database_passes_with_per_table_counts_and_checksums(
    populated, make_drill, no_shadow_left_behind
):
    drill = make_drill()
    run = services.run_in_foreground(drill, trigger="test", requested_by="pytest")

    assert run.status == RunStatus.PASSED, run.mismatches or run.error
    tables = {t["table"]: t for t in run.tables}
    services_row = tables["public.slo_service"]
    assert services_row["source_rows"] == services_row["shadow_rows"] == 120
    assert services_row["source_checksum"] == services_row["shadow_checksum"]
    assert len(services_row["source_checksum"]) == 16
    assert all(t["match"] for t in run.tables)
    assert len(run.tables) > 50  # every table of the portal, not a sample
    phases = [p["name"] for p in run.phases]
    assert phases == [
        "preflight",
        "backup",
        "verify_backup",
        "restore",
        "checksums",
        "schema",
        "integrity",
        "readiness",
        "cleanup",
    ]
    integrity = next(p for p in run.phases if p["name"] == "integrity")
    assert integrity["status"] == "ok", integrity  # pg_amcheck ran (the shadow template has it)
    assert run.rto_seconds > 0 and run.rto_met is True
    assert 0 <= run.rpo_seconds < 60 and run.rpo_met is True
    backup = Backup.objects.get(pk=run.backup_id)
    assert Path(backup.path).is_file() and backup.sha256 == run.backup_sha256
    assert backup.owner_tenant_id is None  # the portal's backups belong to no tenant
    evidence = EvidenceArtifact.objects.get(pk=run.evidence_id)
    assert evidence.kind == "drill_run" and evidence.content["status"] == "passed"


def test_a_row_altered_in_the_shadow_fails_verification_and_names_the_table(
    make_drill, no_shadow_left_behind
):
    drill = make_drill()

    def tamper(backend, shadow):
        with psycopg.connect(backend.shadow_conninfo(shadow), autocommit=True) as conn:
            conn.execute("UPDATE compliance_rule SET name = 'tampered' WHERE id = 'R07'")

    run = services.run_in_foreground(
        drill, trigger="test", requested_by="pytest", after_restore=tamper
    )

    assert run.status == RunStatus.FAILED
    assert any(
        m.startswith("table public.compliance_rule: content checksum") for m in run.mismatches
    ), run.mismatches
    bad = [t["table"] for t in run.tables if not t["match"]]
    assert bad == ["public.compliance_rule"]
    alert = Alert.objects.get(dedup_key=f"drill:{drill.pk}")
    assert alert.tier == 1 and "failed" in alert.title


def test_a_corrupted_backup_is_detected_by_its_sha256_before_any_restore(
    tenant, make_drill, no_shadow_left_behind
):
    taken = services.backup_portal()
    path = Path(taken.backup.path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    drill = make_drill(use_latest_backup=True)

    run = services.run_in_foreground(drill, trigger="test", requested_by="pytest")

    assert run.status == RunStatus.FAILED
    assert "corrupt: SHA-256" in run.error and "nothing was restored" in run.error
    assert "restore" not in [p["name"] for p in run.phases]
    assert Backup.objects.get(pk=taken.backup.pk).status == BackupStatus.CORRUPT


def test_the_latest_stored_backup_can_be_restored_and_its_age_is_the_rpo(
    tenant, make_drill, no_shadow_left_behind
):
    services.backup_portal()
    time.sleep(1.2)
    drill = make_drill(use_latest_backup=True, rpo_target_seconds=1)

    run = services.run_in_foreground(drill, trigger="test", requested_by="pytest")

    assert run.mismatches == [] and run.error == ""
    assert run.rpo_seconds >= 1.2 and run.rpo_met is False  # older than a 1 s target
    assert run.status == RunStatus.FAILED
    alert = Alert.objects.get(dedup_key=f"drill:{drill.pk}")
    assert "missed its RPO target" in alert.title


def test_a_second_drill_while_one_runs_is_refused(tenant, make_drill, no_shadow_left_behind):
    drill = make_drill()
    with engine.drill_lock() as acquired:
        assert acquired
        report = engine.execute(portal_target(), services.options_for(drill))
    assert report.refused and report.status == "refused"
    assert "another drill is running" in report.error
    assert report.phases == []

    DrillRun.objects.create(tenant=drill.tenant, drill=drill, kind=drill.kind)  # queued
    with pytest.raises(services.RunConflict):
        services.run_in_foreground(drill, trigger="test", requested_by="pytest")


def test_not_enough_disk_is_refused_before_starting_with_the_figures(
    tenant, make_drill, settings, no_shadow_left_behind
):
    settings.DRILL_DISK_FACTOR = 1e9
    drill = make_drill()
    run = services.run_in_foreground(drill, trigger="test", requested_by="pytest")
    assert run.status == RunStatus.REFUSED
    assert "not enough disk" in run.error and "bytes free" in run.error
    assert "the drill needs" in run.error
    assert not Backup.objects.exists()
    alert = Alert.objects.get(dedup_key=f"drill:{drill.pk}")
    assert alert.tier == 2 and "could not start" in alert.title  # a ticket, not a page


def test_an_unreachable_target_fails_naming_the_error_and_alerts(
    tenant, make_drill, backup_dir, no_shadow_left_behind
):
    drill = make_drill(
        name="legacy-db",
        target=TargetKind.EXTERNAL,
        dsn="postgresql://ops:s3cret-pw@127.0.0.1:1/legacy",
    )
    run = services.run_in_foreground(drill, trigger="test", requested_by="pytest")

    assert run.status == RunStatus.FAILED
    assert run.error.startswith("cannot connect to the target")
    assert "127.0.0.1" in run.error and "s3cret-pw" not in run.error
    assert not Backup.objects.exists() and not list(Path(backup_dir).glob("*.dump"))
    alert = Alert.objects.get(dedup_key=f"drill:{drill.pk}")
    assert alert.tier == 1 and "cannot connect" in alert.summary
    assert "s3cret-pw" not in str(run.report)


def test_an_external_target_is_restored_into_a_shadow_on_its_own_server(
    tenant, make_drill, no_shadow_left_behind
):
    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    dsn = f"postgresql://opsportal_owner@{host}:{port}/{db['NAME']}"
    drill = make_drill(name="external", target=TargetKind.EXTERNAL, dsn=dsn)
    run = services.run_in_foreground(drill, trigger="test", requested_by="pytest")
    assert run.status == RunStatus.PASSED, run.mismatches or run.error
    readiness = next(p for p in run.phases if p["name"] == "readiness")
    assert readiness["status"] == "skipped"
    assert Backup.objects.get(pk=run.backup_id).owner_tenant_id == drill.tenant_id


def _drill_process(*extra: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "BACKUP_DIR": str(settings.BACKUP_DIR),
        # One job: the restore takes longer, so the test catches it midway.
        "DRILL_RESTORE_JOBS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_drill", "--kind", "backup_restore", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_shadow(process: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shadows = shadow_databases()
        if shadows:
            return shadows[0]
        if process.poll() is not None:
            raise AssertionError(f"the drill ended first: {process.stdout.read()}")
        time.sleep(0.02)
    raise AssertionError("no shadow database appeared")


@transactional
def test_a_drill_terminated_midway_drops_its_shadow_and_records_the_cancellation(
    populated, make_drill, no_shadow_left_behind
):
    make_drill()
    process = _drill_process("--tenant", populated.slug)
    shadow = _wait_for_shadow(process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)

    assert process.returncode != 0, output
    assert shadow not in shadow_databases()
    run = DrillRun.objects.get()
    assert run.status == RunStatus.CANCELED, output
    assert "interrupted" in run.error


@transactional
def test_a_drill_killed_outright_leaves_nothing_once_the_sweep_has_run(
    populated, make_drill, no_shadow_left_behind
):
    make_drill()
    process = _drill_process("--tenant", populated.slug)
    shadow = _wait_for_shadow(process)
    process.kill()  # SIGKILL: no cleanup can run in the process itself
    process.communicate(timeout=30)
    assert shadow in shadow_databases()
    assert DrillRun.objects.get().status == RunStatus.RUNNING

    swept = services.sweep()

    assert shadow in swept["shadows_dropped"] and swept["runs_closed"] == 1
    assert shadow not in shadow_databases()
    run = DrillRun.objects.get()
    assert run.status == RunStatus.FAILED and run.error.startswith("interrupted")


def test_the_sweep_closes_a_run_whose_task_never_started(tenant, make_drill):
    from datetime import timedelta

    from django.utils import timezone

    drill = make_drill()
    run = DrillRun.objects.create(tenant=tenant, drill=drill, kind=drill.kind)
    assert services.sweep()["runs_closed"] == 0  # queued for a moment: left alone
    later = timezone.now() + timedelta(minutes=settings.DRILL_QUEUED_TIMEOUT_MINUTES + 1)
    assert services.sweep(now=later)["runs_closed"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error.startswith("never started")


def test_a_failed_daily_backup_pages_and_the_next_success_resolves(
    tenant, make_drill, settings, backup_dir
):
    make_drill()
    settings.BACKUP_DIR = "/dev/null/backups"
    with pytest.raises(OSError):
        services.backup_portal()
    alert = Alert.objects.get(dedup_key="backup:portal")
    assert alert.tier == 1 and alert.resolved_at is None
    settings.BACKUP_DIR = backup_dir
    services.backup_portal()
    alert.refresh_from_db()
    assert alert.resolved_at is not None
