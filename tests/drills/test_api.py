"""The drills API: drills with encrypted DSNs (422 on bad input), queued runs (202, 409 when
one is active), run detail, cancellation, roles and tenant isolation."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.core.models import OutboxMessage
from apps.drills import services
from apps.drills.models import Drill, DrillRun
from apps.drills.report import DrillReport
from apps.tenancy.roles import Role
from opsportal import crypto

DSN = "postgresql://ops:hunter2-secret@db.internal:5432/billing"


@pytest.fixture
def operator(api, make_token, tenant):
    return api(make_token(tenant, Role.OPERATOR))


def _create(client, **body):
    payload = {"name": "billing-restore", "kind": "backup_restore", "target": "external"}
    payload.update(body)
    return client.post("/api/v1/drills", payload, format="json")


def test_an_external_drill_is_created_with_its_dsn_encrypted_and_never_returned(operator, tenant):
    response = _create(operator, dsn=DSN)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["dsn_hint"] == "postgresql://ops@db.internal:5432/billing"
    assert "dsn" not in body and "hunter2" not in response.content.decode()
    assert body["next_run_at"].endswith("-07:00") and "T02:00:00" in body["next_run_at"]
    drill = Drill.objects.get(pk=body["id"])
    assert "hunter2" in crypto.decrypt(drill.dsn_ciphertext)
    assert "hunter2" not in drill.dsn_ciphertext
    events = AuditEvent.objects.filter(action="drill.saved")
    assert events.exists() and not any("hunter2" in str(e.after) for e in events)
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name=services.schedule_name(drill))
    assert task.crontab.timezone.key == "America/Edmonton" and task.crontab.hour == "2"


@pytest.mark.parametrize(
    "body, field, status",
    [
        ({"dsn": "mysql://root@db/x"}, "dsn", 422),
        ({"dsn": "postgresql://ops@db.internal"}, "dsn", 422),
        ({}, "dsn", 422),
        ({"dsn": DSN, "schedule": "every saturday"}, "schedule", 422),
        ({"dsn": DSN, "kind": "migration_rollback"}, "kind", 422),
        ({"target": "portal"}, "target", 422),
        ({"dsn": DSN, "time_zone": "Mars/Olympus"}, "time_zone", 400),
        ({"dsn": DSN, "kind": "restore_everything"}, "kind", 400),
    ],
)
def test_invalid_drills_are_refused_naming_the_field_and_write_nothing(
    operator, body, field, status
):
    response = _create(operator, **body)
    assert response.status_code == status, response.json()
    problem = response.json()
    assert problem["status"] == status and field in problem["errors"]
    assert not Drill.objects.exists()


def test_a_drill_is_changed_with_its_version_and_a_stale_version_gets_409(operator):
    drill_id = _create(operator, dsn=DSN).json()["id"]
    ok = operator.patch(
        f"/api/v1/drills/{drill_id}", {"version": 1, "rto_target_seconds": 600}, format="json"
    )
    assert ok.status_code == 200 and ok.json()["rto_target_seconds"] == 600
    stale = operator.patch(
        f"/api/v1/drills/{drill_id}", {"version": 1, "rto_target_seconds": 60}, format="json"
    )
    assert stale.status_code == 409
    assert Drill.objects.get(pk=drill_id).rto_target_seconds == 600


def test_a_run_is_queued_with_202_and_a_second_gets_409(operator):
    drill_id = _create(operator, dsn=DSN).json()["id"]
    response = operator.post(f"/api/v1/drills/{drill_id}/runs", HTTP_IDEMPOTENCY_KEY="run-1")
    assert response.status_code == 202, response.json()
    run = response.json()
    assert run["status"] == "queued" and response["Location"] == run["links"]["self"]
    assert OutboxMessage.objects.filter(
        task_name="drills.execute_run", kwargs__run_id=run["id"]
    ).exists()
    replay = operator.post(f"/api/v1/drills/{drill_id}/runs", HTTP_IDEMPOTENCY_KEY="run-1")
    assert replay.status_code == 202 and replay.json()["id"] == run["id"]

    second = operator.post(f"/api/v1/drills/{drill_id}/runs")
    assert second.status_code == 409
    assert "never run at once" in second.json()["detail"]
    assert DrillRun.objects.count() == 1

    cancel = operator.post(f"/api/v1/drills/runs/{run['id']}/cancel")
    assert cancel.status_code == 200 and cancel.json()["status"] == "canceled"


def test_a_finished_run_shows_phases_tables_rto_and_rpo(operator, tenant):
    drill = Drill.objects.get(pk=_create(operator, dsn=DSN).json()["id"])
    run = DrillRun.objects.create(tenant=tenant, drill=drill, kind=drill.kind)
    report = DrillReport.from_dict(
        {
            "kind": "backup_restore",
            "engine": "postgresql",
            "target": drill.dsn_hint,
            "started_at": "2026-11-21T09:00:00+00:00",
            "finished_at": "2026-11-21T09:01:00+00:00",
            "rto_target_seconds": 900,
            "rpo_target_seconds": 86400,
            "phases": [{"name": "restore", "status": "ok", "seconds": 12.5, "detail": ""}],
            "tables": [
                {
                    "table": "public.a",
                    "source_rows": 3,
                    "source_checksum": "aa",
                    "shadow_rows": 3,
                    "shadow_checksum": "aa",
                }
            ],
            "rto_seconds": 20.0,
            "rpo_seconds": 30.0,
        }
    )
    services.finish_run(run, report)

    body = operator.get(f"/api/v1/drills/runs/{run.pk}").json()
    assert body["status"] == "passed"
    assert body["tables"][0]["match"] is True
    assert body["rto_met"] is True and body["rpo_seconds"] == 30.0
    assert body["phases"][0]["name"] == "restore" and body["evidence_sha256"]


def test_roles_and_tenants_are_enforced(api, make_token, tenant, other_tenant, operator):
    drill_id = _create(operator, dsn=DSN).json()["id"]
    viewer = api(make_token(tenant, Role.VIEWER))
    assert viewer.get(f"/api/v1/drills/{drill_id}").status_code == 200
    assert viewer.post(f"/api/v1/drills/{drill_id}/runs").status_code == 403
    assert _create(viewer, name="x", dsn=DSN).status_code == 403
    stranger = api(make_token(other_tenant, Role.OPERATOR))
    assert stranger.get(f"/api/v1/drills/{drill_id}").status_code == 404
    assert stranger.post(f"/api/v1/drills/{drill_id}/runs").status_code == 404
    assert stranger.get("/api/v1/drills").json()["results"] == []
    assert api().get("/api/v1/drills").status_code == 401
