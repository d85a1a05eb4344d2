"""Drills in the admin (list with last result and next run, the RTO trend, a run's per-table
verification, "run now", cancel, DSN validation) and the overview tile."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.models import OutboxMessage
from apps.drills import services
from apps.drills.models import Drill, DrillRun, RunStatus
from apps.drills.report import DrillReport


def _finished_run(drill: Drill, *, rto: float, passed: bool = True, days_ago: int = 0) -> DrillRun:
    run = DrillRun.objects.create(tenant=drill.tenant, drill=drill, kind=drill.kind)
    when = timezone.now() - timedelta(days=days_ago)
    report = DrillReport.from_dict(
        {
            "kind": drill.kind,
            "engine": "postgresql",
            "target": "portal database",
            "started_at": when.isoformat(),
            "finished_at": (when + timedelta(seconds=rto + 5)).isoformat(),
            "rto_target_seconds": drill.rto_target_seconds,
            "rpo_target_seconds": drill.rpo_target_seconds,
            "phases": [{"name": "restore", "status": "ok", "seconds": rto, "detail": "into x"}],
            "tables": [
                {
                    "table": "public.slo_service",
                    "source_rows": 120,
                    "source_checksum": "00000000000000aa",
                    "shadow_rows": 120,
                    "shadow_checksum": "00000000000000aa" if passed else "00000000000000ab",
                }
            ],
            "mismatches": [] if passed else ["table public.slo_service: content checksum"],
            "rto_seconds": rto,
            "rpo_seconds": 1.0,
        }
    )
    return services.finish_run(run, report)


@pytest.fixture
def drill(make_drill):
    return make_drill(name="portal-weekly-restore")


def test_the_list_shows_last_result_rto_and_next_run_and_the_drill_its_trend(
    drill, tenant, admin_client_for
):
    _finished_run(drill, rto=40, days_ago=14)
    _finished_run(drill, rto=55, days_ago=7)
    latest = _finished_run(drill, rto=61, passed=False)
    client = admin_client_for(tenant)

    page = client.get("/admin/drills/drill/").content.decode()
    assert "portal-weekly-restore" in page and "drill-status-bad" in page
    assert "61.0 s (15.0 min)" in page
    assert "2026-" in page and "MST" in page  # next run, in the drill's time zone

    detail = client.get(f"/admin/drills/drill/{drill.pk}/change/").content.decode()
    assert "<svg" in detail and "RTO per run in seconds, oldest first (target 900 s)" in detail
    assert detail.count("drill-rto-met") == 3 and "drill-rto-missed" not in detail

    run_page = client.get(f"/admin/drills/drillrun/{latest.pk}/change/").content.decode()
    assert "public.slo_service" in run_page and "00000000000000ab" in run_page
    assert "Per-table verification" in run_page and "content checksum" in run_page


def test_run_now_queues_a_run_and_cancel_cancels_it(drill, tenant, admin_client_for):
    client = admin_client_for(tenant)
    response = client.post(
        "/admin/drills/drill/",
        {"action": "run_now", "_selected_action": [drill.pk]},
        follow=True,
    )
    assert "queued" in response.content.decode()
    run = DrillRun.objects.get()
    assert run.status == RunStatus.QUEUED and run.trigger == "admin"
    assert OutboxMessage.objects.filter(task_name="drills.execute_run").exists()

    again = client.post(
        "/admin/drills/drill/", {"action": "run_now", "_selected_action": [drill.pk]}, follow=True
    )
    assert "never run at once" in again.content.decode()

    client.post(
        "/admin/drills/drillrun/", {"action": "cancel", "_selected_action": [run.pk]}, follow=True
    )
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED and run.cancel_requested


def test_the_admin_form_refuses_a_bad_dsn_and_keeps_the_stored_one_secret(
    tenant, admin_client_for, backup_dir
):
    client = admin_client_for(tenant)
    form = {
        "tenant": tenant.pk,
        "name": "billing",
        "kind": "backup_restore",
        "target": "external",
        "dsn": "mysql://root@db/x",
        "schedule": "0 2 * * 6",
        "time_zone": "America/Edmonton",
        "rto_target_seconds": 900,
        "rpo_target_seconds": 86400,
        "rollback_to": "steps=1",
        "enabled": "on",
    }
    bad = client.post("/admin/drills/drill/add/", form)
    assert bad.status_code == 200 and "Only postgresql://" in bad.content.decode()
    assert not Drill.objects.exists()

    form["dsn"] = "postgresql://ops:topsecret@db.internal/billing"
    ok = client.post("/admin/drills/drill/add/", form)
    assert ok.status_code == 302
    drill = Drill.objects.get()
    page = client.get(f"/admin/drills/drill/{drill.pk}/change/").content.decode()
    assert "postgresql://ops@db.internal/billing" in page and "topsecret" not in page


def test_the_tile_shows_the_last_drill_rto_against_target_and_backup_age(
    drill, tenant, admin_client_for
):
    client = admin_client_for(tenant)
    page = client.get("/admin/").content.decode()
    tile = page[page.index(">DR drills<") :]
    assert "never run" in tile and "not installed yet" not in tile

    _finished_run(drill, rto=42.5)
    tile = client.get("/admin/").content.decode()
    tile = tile[tile.index(">DR drills<") :]
    assert "portal-weekly-restore: passed" in tile
    assert "42.5 s / 900 s" in tile
    assert "next drill" in tile


def test_a_missed_rto_pages_and_the_next_pass_resolves_the_alert(drill):
    from apps.alerts.models import Alert

    missed = _finished_run(drill, rto=901)
    assert missed.status == RunStatus.FAILED and missed.rto_met is False
    assert missed.mismatches == []
    alert = Alert.objects.get(dedup_key=f"drill:{drill.pk}")
    assert alert.tier == 1 and "missed its RTO target" in alert.title
    assert "RTO 901 s over the 900 s target" in alert.summary

    assert _finished_run(drill, rto=30).status == RunStatus.PASSED
    alert.refresh_from_db()
    assert alert.resolved_at is not None
