import itertools
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from apps.audit.hashing import event_fields, event_hash
from apps.audit.models import AppendOnlyError, AuditEvent
from apps.audit.selectors import verify_chains
from apps.audit.services import Change, record_checkpoint, record_event, record_events
from apps.tenancy.models import Membership
from apps.tenancy.roles import Role
from apps.tenancy.services import add_member, ensure_user, update_tenant

pytestmark = pytest.mark.django_db


def test_service_writes_are_audited_with_before_and_after(tenant):
    update_tenant(tenant, changes={"name": "Acme Corp"}, expected_version=1)
    event = AuditEvent.objects.filter(action="tenant.updated").get()
    assert event.before["name"] == "Acme" and event.after["name"] == "Acme Corp"
    assert event.chain == f"tenant:{tenant.pk}"
    assert event.tenant_id == tenant.pk


def test_chain_links_each_event_to_the_previous(tenant):
    for i in range(3):
        record_event(tenant_id=tenant.pk, action=f"test.{i}", target_type="x", target_id=i)
    events = list(AuditEvent.objects.filter(chain=f"tenant:{tenant.pk}").order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for previous, current in itertools.pairwise(events):
        assert current.prev_hash == previous.hash
    assert verify_chains().ok


def test_events_appended_together_chain_as_if_appended_one_by_one(tenant):
    record_event(tenant_id=tenant.pk, action="test.before", target_type="x", target_id=0)
    changes = [Change(f"test.{i}", "x", i, before={"n": i}, after={"n": i + 1}) for i in range(5)]
    appended = record_events(tenant_id=tenant.pk, changes=changes)
    record_event(tenant_id=tenant.pk, action="test.after", target_type="x", target_id=9)
    events = list(AuditEvent.objects.filter(chain=f"tenant:{tenant.pk}").order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.action for e in events[-7:]] == [
        "test.before",
        *(f"test.{i}" for i in range(5)),
        "test.after",
    ]
    assert [e.pk for e in appended] == [e.pk for e in events[-6:-1]]
    for previous, current in itertools.pairwise(events):
        assert current.prev_hash == previous.hash
        assert current.hash == event_hash(current.prev_hash, event_fields(current))
    assert events[-2].before == {"n": 4} and events[-2].after == {"n": 5}
    assert verify_chains().ok
    assert record_events(tenant_id=tenant.pk, changes=[]) == []


def test_verify_audit_command_counts_events(tenant, capsys):
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert out.startswith("audit chain OK:")
    assert f"{AuditEvent.objects.count()} events verified" in out


def test_bulk_update_is_audited_per_row(tenant):
    users = [ensure_user(f"u{i}") for i in range(3)]
    for user in users:
        add_member(tenant=tenant, user=user, role=Role.VIEWER)
    changed = Membership.objects.for_tenant(tenant).update(role=Role.OPERATOR)
    assert changed == 3
    events = AuditEvent.objects.filter(action="membership.bulk_updated")
    assert events.count() == 3
    assert {e.after["role"] for e in events} == {"operator"}
    assert {e.before["role"] for e in events} == {"viewer"}
    assert verify_chains().ok


def test_bulk_delete_is_audited_per_row(tenant):
    add_member(tenant=tenant, user=ensure_user("gone"), role=Role.VIEWER)
    Membership.objects.for_tenant(tenant).delete()
    assert AuditEvent.objects.filter(action="membership.bulk_deleted").count() == 1


def test_model_refuses_to_change_events(tenant):
    event = AuditEvent.objects.first()
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().update(action="x")


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_auditevent SET action = 'x'", "DELETE FROM audit_auditevent"]
)
def test_database_trigger_refuses_update_and_delete(tenant, statement):
    from django.db.utils import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)


@pytest.mark.postgres
def test_database_trigger_refuses_truncate(tenant):
    from django.db.utils import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # flush deferred FK checks first
            cursor.execute("TRUNCATE audit_auditevent CASCADE")


def _edit_behind_the_triggers_back(sql: str, params: list) -> None:
    """What a database owner could do: disable the trigger, edit, re-enable."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
            cursor.execute(sql, params)
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
        else:  # SQLite: the test's transaction restores the dropped triggers
            cursor.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
            cursor.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
            cursor.execute(sql, params)


def test_tampering_is_caught_and_the_first_bad_event_named(tenant):
    for i in range(4):
        record_event(tenant_id=tenant.pk, action=f"test.{i}", target_type="x", target_id=i)
    victim = AuditEvent.objects.get(chain=f"tenant:{tenant.pk}", action="test.1")
    _edit_behind_the_triggers_back(
        "UPDATE audit_auditevent SET after = %s WHERE id = %s",
        [json.dumps({"forged": True}), victim.pk],
    )
    result = verify_chains()
    assert not result.ok
    assert f"event #{victim.seq} (id {victim.pk}, test.1) was altered" in result.problems[0]
    with pytest.raises(CommandError, match=f"id {victim.pk}"):
        call_command("verify_audit")


def test_consistent_rewrite_is_caught_only_by_the_checkpoint(tenant, tmp_path):
    for i in range(3):
        record_event(tenant_id=tenant.pk, action=f"test.{i}", target_type="x", target_id=i)
    checkpoint = record_checkpoint(tmp_path)
    chain = f"tenant:{tenant.pk}"
    prev = "0" * 64
    for event in AuditEvent.objects.filter(chain=chain).order_by("seq"):
        if event.action == "test.0":
            event.action = "test.forged"
        new_hash = event_hash(prev, event_fields(event))
        _edit_behind_the_triggers_back(
            "UPDATE audit_auditevent SET action = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [event.action, prev, new_hash, event.pk],
        )
        prev = new_hash
    from apps.audit.models import AuditChain

    AuditChain.objects.filter(key=chain).update(last_hash=prev)
    assert verify_chains().ok, "a consistent rewrite passes the chain check alone"
    result = verify_chains(checkpoint)
    assert not result.ok
    assert "the chain was rewritten" in result.problems[0]
    with pytest.raises(CommandError, match="rewritten"):
        call_command("verify_audit", "--checkpoint", str(checkpoint))


def test_checkpoint_file_holds_every_chain_head(tenant, tmp_path):
    path = record_checkpoint(tmp_path)
    document = json.loads(path.read_text())
    head = AuditEvent.objects.filter(chain=f"tenant:{tenant.pk}").order_by("-seq").first()
    assert document["chains"][f"tenant:{tenant.pk}"] == {"seq": head.seq, "hash": head.hash}


def test_export_audit_writes_lines_and_a_manifest(tenant, tmp_path):
    import hashlib

    out = tmp_path / "audit.jsonl"
    call_command("export_audit", "--output", str(out))
    lines = out.read_text().splitlines()
    assert len(lines) == AuditEvent.objects.count()
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert manifest["events"] == len(lines)


def test_removed_tail_events_are_caught_by_the_head(tenant):
    for i in range(3):
        record_event(tenant_id=tenant.pk, action=f"test.{i}", target_type="x", target_id=i)
    last = AuditEvent.objects.filter(chain=f"tenant:{tenant.pk}").order_by("-seq").first()
    _edit_behind_the_triggers_back("DELETE FROM audit_auditevent WHERE id = %s", [last.pk])
    result = verify_chains()
    assert f"head says #{last.seq} but the chain ends at #{last.seq - 1}" in result.problems[0]


def test_users_and_schedules_changed_outside_services_are_audited(db, django_user_model):
    from django_celery_beat.models import PeriodicTask

    user = django_user_model.objects.create_user("auditor", password="x" * 16)
    user.is_staff = True
    user.save()
    PeriodicTask.objects.filter(name="drain outbox").update(enabled=False)  # queryset: no signal
    task = PeriodicTask.objects.get(name="drain outbox")
    task.enabled = True
    task.save()
    created = AuditEvent.objects.get(action="user.created", target_id=str(user.pk))
    assert "password" not in created.after and created.chain == "system"
    updated = AuditEvent.objects.get(action="user.updated", target_id=str(user.pk))
    assert (updated.before["is_staff"], updated.after["is_staff"]) == (False, True)
    schedule = AuditEvent.objects.get(action="periodictask.updated", target_id=str(task.pk))
    assert schedule.after["enabled"] is True
    assert verify_chains().ok


def test_daily_verification_is_kept_as_evidence(tenant):
    from apps.audit.models import EvidenceArtifact
    from apps.audit.tasks import verify_chains_task

    assert verify_chains_task() is True
    evidence = EvidenceArtifact.objects.get(kind="audit.verification")
    assert evidence.content["ok"] is True and evidence.content["verified"] > 0


def test_a_chain_whose_events_were_all_deleted_is_named(tenant):
    chain = f"tenant:{tenant.pk}"
    _edit_behind_the_triggers_back("DELETE FROM audit_auditevent WHERE chain = %s", [chain])
    result = verify_chains()
    assert any(p.startswith(f"chain {chain}: head says") for p in result.problems)


def test_password_changes_are_audited_without_the_hash(db, django_user_model):
    user = django_user_model.objects.create_user("pw", password="first-password-123")
    user.set_password("second-password-456")
    user.save()
    event = AuditEvent.objects.get(action="user.updated", target_id=str(user.pk))
    assert event.after["password_changed"] is True
    assert user.password not in json.dumps(event.after) + json.dumps(event.before)
