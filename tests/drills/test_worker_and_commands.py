"""A run queued through the API executes on a real Celery worker; the commands print their
reports and exit non-zero on failure; backups past retention are removed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.drills import services
from apps.drills.models import Backup, BackupStatus, DrillRun, RunStatus
from apps.tenancy.roles import Role
from tests.worker import _start_worker, _stop, _wait_for, needs_redis

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_run_queued_through_the_api_is_executed_by_a_celery_worker(
    tenant, make_drill, api, make_token, worker_queue, no_shadow_left_behind
):
    drill = make_drill()
    client = api(make_token(tenant, Role.OPERATOR))
    worker = _start_worker(
        worker_queue, settings.CELERY_BROKER_URL, {"BACKUP_DIR": str(settings.BACKUP_DIR)}
    )
    try:
        response = client.post(f"/api/v1/drills/{drill.pk}/runs")
        assert response.status_code == 202
        run_id = response.json()["id"]

        def finished() -> bool:
            return DrillRun.objects.get(pk=run_id).finished

        done = _wait_for(finished, timeout=120)
    finally:
        output = _stop(worker)
    assert done, output
    body = client.get(f"/api/v1/drills/runs/{run_id}").json()
    assert body["status"] == "passed", (body["error"], body["mismatches"], output[-2000:])
    assert body["trigger"] == "api" and body["rto_met"] is True
    assert {t["table"] for t in body["tables"]} >= {"public.drills_drill", "public.slo_service"}


def test_run_drill_prints_the_report_and_exits_non_zero_when_the_drill_fails(
    tenant, make_drill, capsys, settings, no_shadow_left_behind
):
    make_drill()
    call_command("run_drill", "--kind", "backup_restore", "--tenant", tenant.slug, "--dry-run")
    dry = capsys.readouterr().out
    assert "DRY RUN, nothing touched" in dry and "pg_dump (custom format)" in dry
    assert not DrillRun.objects.exists() and not Backup.objects.exists()

    call_command("run_drill", "--kind", "backup_restore", "--tenant", tenant.slug)
    out = capsys.readouterr().out
    assert "Per-table verification:" in out and "Result: PASSED" in out
    assert "RTO " in out and "RPO " in out

    settings.DRILL_DISK_FACTOR = 1e9
    with pytest.raises(CommandError, match="drill refused: not enough disk"):
        call_command("run_drill", "--kind", "backup_restore", "--tenant", tenant.slug)
    assert "Result: REFUSED" in capsys.readouterr().out


def test_backup_now_records_the_file_and_retention_keeps_the_newest(
    tenant, capsys, settings, backup_dir
):
    call_command("backup_now")
    out = capsys.readouterr().out
    assert "sha256" in out and "tables" in out
    first = Backup.objects.get()
    assert Path(first.path).is_file() and first.size_bytes == Path(first.path).stat().st_size
    call_command("backup_now")
    second = Backup.objects.exclude(pk=first.pk).get()

    old = timezone.now() - timedelta(days=settings.BACKUP_RETENTION_DAYS + 1)
    Backup.objects.filter(pk=first.pk).update(snapshot_at=old - timedelta(hours=1))
    Backup.objects.filter(pk=second.pk).update(snapshot_at=old)
    result = services.purge_backups()

    assert result["expired"] == 1 and result["bytes_freed"] > 0
    kept = Backup.objects.get(status=BackupStatus.OK)
    assert kept.pk == second.pk and Path(kept.path).is_file()  # the newest is always kept
    assert not Path(first.path).exists()
    assert Backup.objects.get(pk=first.pk).status == BackupStatus.EXPIRED


def test_a_scheduled_drill_is_refused_while_another_is_active(tenant, make_drill):
    drill = make_drill()
    DrillRun.objects.create(tenant=tenant, drill=drill, kind=drill.kind, status=RunStatus.RUNNING)
    run = services.run_scheduled(drill.pk)
    assert run.status == RunStatus.REFUSED and run.trigger == "schedule"
    assert "another drill" in run.error
