"""Migration rollback: states, plans, irreversible steps, and a rehearsal in a shadow copy."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings

from apps.drills import engine, rollback, services
from apps.drills.models import Backup, DrillKind, RunStatus
from apps.drills.targets import portal_target
from tests.drills.conftest import shadow_databases

WITH_TEST_APP = override_settings(
    INSTALLED_APPS=[*settings.INSTALLED_APPS, "tests.drills.irreversible_app"]
)


@pytest.fixture
def irreversible_app_applied(db):
    """The test app installed, and its two migrations recorded as applied in the database."""
    with WITH_TEST_APP:
        recorder = MigrationRecorder(connection)
        recorder.record_applied("irreversible_app", "0001_initial")
        recorder.record_applied("irreversible_app", "0002_backfill_names")
        yield


def test_a_rollback_plan_reports_an_irreversible_migration_of_a_test_app(
    irreversible_app_applied,
):
    plan = rollback.plan("irreversible_app=0001")
    assert plan.backward == ["irreversible_app.0002_backfill_names"]
    assert len(plan.irreversible) == 1
    assert plan.irreversible[0].startswith(
        "irreversible_app.0002_backfill_names operation 1 (RunPython"
    )
    assert "IRREVERSIBLE steps (1)" in plan.render_text()


def test_rollback_plan_command_prints_the_plan_and_fails_on_an_irreversible_step(
    irreversible_app_applied, capsys
):
    with pytest.raises(CommandError, match="1 irreversible step"):
        call_command("rollback_plan", "--to", "irreversible_app=zero", "--dry-run")
    out = capsys.readouterr().out
    assert "irreversible_app.0002_backfill_names" in out
    assert "irreversible_app.0001_initial" in out


@pytest.mark.postgres
def test_a_rehearsal_with_an_irreversible_step_is_refused_before_touching_anything(
    irreversible_app_applied, backup_dir
):
    options = engine.DrillOptions(
        kind=DrillKind.MIGRATION_ROLLBACK, rollback_to="irreversible_app=0001"
    )
    report = engine.execute(portal_target(), options)
    assert report.status == "failed"
    assert "irreversible migrations" in report.error and "nothing was touched" in report.error
    assert (
        report.mismatches == [f"irreversible: {report.rollback['irreversible'][0]}"]
        and "RunPython" in report.mismatches[0]
    )
    assert [p.name for p in report.phases] == ["preflight"]
    assert not Backup.objects.exists() and not shadow_databases()


def test_states_are_parsed_from_steps_app_names_and_state_files(db, tmp_path):
    current = rollback.current_state()
    assert current["alerts"] == "0002_alter_digest_kind"
    assert all(current.values())  # every portal app with migrations, at its latest

    assert ("alerts", "0001_initial") in rollback.parse_state("steps=1")
    assert all(name is not None for _, name in rollback.parse_state("steps=1"))
    assert rollback.parse_state("alerts=0001") == [("alerts", "0001_initial")]
    assert rollback.parse_state("slo=zero") == [("slo", None)]

    state_file = tmp_path / "release-2026.11.json"
    call_command("migration_state", "--output", str(state_file))
    assert json.loads(state_file.read_text())["migrations"] == current
    assert rollback.plan(str(state_file)).backward == []  # the database is at that state

    for bad, message in [
        ("", "no state given"),
        ("steps=0", "at least 1"),
        ("steps=x", "whole number"),
        ("nosuchapp=0001", "has no migrations"),
        ("alerts=0099", "alerts=0099"),
        ("/nonexistent/state.json", "no such state file"),
    ]:
        with pytest.raises(rollback.StateError, match=message):
            rollback.parse_state(bad)


@pytest.mark.postgres
def test_a_rollback_rehearsal_migrates_a_shadow_back_checks_it_and_forward_again(
    tenant, make_drill, no_shadow_left_behind
):
    drill = make_drill(
        name="rollback", kind=DrillKind.MIGRATION_ROLLBACK, rollback_to="alerts=0001"
    )
    run = services.run_in_foreground(drill, trigger="test", requested_by="pytest")

    assert run.status == RunStatus.PASSED, run.mismatches or run.error
    phases = [p["name"] for p in run.phases]
    assert phases == [
        "preflight",
        "backup",
        "verify_backup",
        "restore",
        "rollback",
        "rolled_back_checks",
        "forward",
        "readiness",
        "schema",
        "cleanup",
    ]
    plan = run.report["rollback"]
    assert plan["backward"] == ["alerts.0002_alter_digest_kind"]
    assert plan["backward_applied"] == ["alerts.0002_alter_digest_kind (backwards)"]
    assert plan["forward"] == ["alerts.0002_alter_digest_kind"]
    checks = next(p for p in run.phases if p["name"] == "rolled_back_checks")
    assert "smoke queries with that state's models" in checks["detail"]
    assert run.rto_seconds > 0 and run.rpo_seconds is not None
    # The live database was never migrated.
    assert rollback.current_state()["alerts"] == "0002_alter_digest_kind"


@pytest.mark.postgres
def test_row_level_security_setup_skips_tables_a_backward_migration_dropped(db):
    from apps.tenancy import rls

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE drills_drillrun RENAME TO drills_drillrun_gone")
    rls.apply_row_level_security()  # post_migrate after `migrate drills zero`-like rollbacks


def test_a_rollback_dry_run_prints_the_steps_and_plan_and_touches_nothing(db, backup_dir):
    options = engine.DrillOptions(
        kind=DrillKind.MIGRATION_ROLLBACK, rollback_to="alerts=0001", dry_run=True
    )
    report = engine.execute(portal_target(), options)
    assert report.dry_run and report.phases == [] and report.error == ""
    assert any("migrate the shadow backwards to alerts=0001" in s for s in report.steps)
    assert report.rollback["backward"] == ["alerts.0002_alter_digest_kind"]
    assert "DRY RUN, nothing touched" in report.render_text()
    assert not Backup.objects.exists() and not list(backup_dir.glob("*"))
