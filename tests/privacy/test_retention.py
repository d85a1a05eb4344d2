"""Retention: default policies per category, batches of at most the batch size, a run that
resumes after a crash with the same cutoffs, a dry run that changes nothing, packages expiring as
files, the beat job at 03:00 tenant time, and audit events never a target."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from apps.alerts.models import AckLink, Alert, AlertStatus
from apps.audit.models import AuditEvent, EvidenceArtifact
from apps.core.models import IdempotencyRecord
from apps.privacy import retention, services
from apps.privacy.models import PrivacyRequest, RetentionPolicy, RetentionRun, Status


def _replays(tenant, count: int, *, age: timedelta) -> None:
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(
            tenant=tenant,
            key=f"k{n}",
            endpoint="/api/v1/x",
            request_hash="0" * 64,
            response_status=201,
            response_body={"n": n},
        )
        for n in range(count)
    )
    IdempotencyRecord.objects.update(created_at=timezone.now() - age)


def test_every_category_gets_its_default_policy_once(tenant):
    created = retention.ensure_default_policies(tenant)
    assert {p.category for p in created} == set(retention.CATEGORIES)
    assert retention.ensure_default_policies(tenant) == []
    keep = {p.category: p.keep for p in RetentionPolicy.objects.for_tenant(tenant)}
    assert keep["idempotency-keys"] == timedelta(hours=24)
    assert keep["alert-history"] == timedelta(days=30)
    assert keep["resolved-violations"] == timedelta(days=90)
    assert keep["compliance-trends"] == timedelta(days=365)
    assert keep["privacy-packages"] == timedelta(days=30)


def test_expired_rows_go_in_batches_and_the_report_is_evidence(tenant, other_tenant):
    _replays(tenant, 23, age=timedelta(hours=25))
    IdempotencyRecord.objects.create(
        tenant=other_tenant, key="theirs", endpoint="/x", request_hash="0", response_status=201
    )
    IdempotencyRecord.objects.filter(key="theirs").update(
        created_at=timezone.now() - timedelta(days=3)
    )
    fresh = IdempotencyRecord.objects.create(
        tenant=tenant, key="fresh", endpoint="/x", request_hash="0", response_status=201
    )

    run = retention.enforce(tenant, batch_size=10)

    entry = run.report["policies"]["idempotency-keys"]
    assert entry["rows"] == 23 and entry["batches"] == 3 and entry["done"]
    assert list(IdempotencyRecord.objects.filter(tenant=tenant)) == [fresh]
    assert IdempotencyRecord.objects.filter(key="theirs").exists()  # another tenant's: its own run
    assert run.status == RetentionRun.COMPLETED
    evidence = EvidenceArtifact.objects.get(pk=run.evidence_id)
    assert evidence.kind == "retention_run"
    assert evidence.content["policies"]["idempotency-keys"]["rows"] == 23
    assert AuditEvent.objects.filter(action="retention.enforced").count() == 1


def test_a_run_interrupted_midway_is_resumed_with_the_same_cutoffs(tenant):
    _replays(tenant, 25, age=timedelta(hours=30))

    def crash(category, batches):
        if category == "idempotency-keys" and batches == 2:
            raise retention.Interrupted

    with pytest.raises(retention.Interrupted):
        retention.enforce(tenant, batch_size=10, after_batch=crash)
    interrupted = RetentionRun.objects.get()
    assert interrupted.status == RetentionRun.RUNNING
    assert interrupted.report["policies"]["idempotency-keys"]["rows"] == 20  # committed batches
    assert IdempotencyRecord.objects.count() == 5
    cutoff = interrupted.cutoffs["idempotency-keys"]

    # Rows that expire only after the first run started are not its business.
    later = timezone.now() + timedelta(hours=48)
    resumed = retention.enforce(tenant, batch_size=10, now=later)

    assert resumed.pk == interrupted.pk and resumed.status == RetentionRun.COMPLETED
    assert resumed.cutoffs["idempotency-keys"] == cutoff
    assert resumed.report["resumed"] == 1
    assert resumed.report["policies"]["idempotency-keys"]["rows"] == 25
    assert IdempotencyRecord.objects.count() == 0


def test_a_dry_run_counts_and_changes_nothing(tenant):
    _replays(tenant, 7, age=timedelta(days=2))
    out = io.StringIO()
    call_command("enforce_retention", "--dry-run", "--tenant", tenant.slug, stdout=out)
    assert "idempotency-keys: would delete 7 row(s)" in out.getvalue()
    assert IdempotencyRecord.objects.count() == 7
    assert not RetentionRun.objects.exists() and not RetentionPolicy.objects.exists()


def test_a_failing_policy_is_reported_and_the_others_still_run(tenant, monkeypatch):
    _replays(tenant, 3, age=timedelta(days=2))
    real_apply = retention._apply

    def broken(policy, ids):
        if policy.category == "idempotency-keys":
            raise RuntimeError("disk full")
        return real_apply(policy, ids)

    monkeypatch.setattr(retention, "_apply", broken)
    run = retention.enforce(tenant)

    assert run.status == RetentionRun.FAILED
    assert run.report["policies"]["idempotency-keys"]["error"] == "RuntimeError: disk full"
    assert run.report["policies"]["alert-history"]["done"] is True
    monkeypatch.undo()
    # Not resumed for ever: the next run is a new one, and it deletes.
    assert retention.enforce(tenant).report["policies"]["idempotency-keys"]["rows"] == 3


def test_resolved_alert_history_goes_with_what_hangs_off_it_open_alerts_stay(tenant):
    from apps.alerts.services import raise_alert, resolve_alert

    old = raise_alert(tenant, source="test", tier=3, dedup_key="old", title="old", summary="")
    raise_alert(tenant, source="test", tier=3, dedup_key="firing", title="firing", summary="")
    resolve_alert(tenant, "old")
    Alert.objects.filter(pk=old.alert.pk).update(resolved_at=timezone.now() - timedelta(days=31))
    AckLink.objects.create(tenant=tenant, alert=old.alert, nonce="used-once")

    run = retention.enforce(tenant)

    assert run.report["policies"]["alert-history"]["rows"] == 1
    assert list(Alert.objects.values_list("dedup_key", "status")) == [
        ("firing", AlertStatus.FIRING)
    ]
    assert not AckLink.objects.exists()  # cascaded, as the model says


def test_an_expired_package_is_deleted_as_a_file_the_request_stays(tenant, settings, tmp_path):
    settings.EVIDENCE_DIR = tmp_path / "evidence"
    request = services.create_request(tenant, request_type="access", subject_email="a@b.co")
    for step in (Status.VERIFIED, Status.APPROVED, Status.IN_PROGRESS):
        request = services.transition(request, step, note="ok")
    request = services.complete_with_package(request)
    path = Path(request.package_path)
    assert path.is_file()
    retention.enforce(tenant)
    assert path.is_file(), "29 days left"
    PrivacyRequest.objects.filter(pk=request.pk).update(
        completed_at=timezone.now() - timedelta(days=31)
    )

    run = retention.enforce(tenant)

    assert run.report["policies"]["privacy-packages"]["rows"] == 1
    assert not path.exists()
    request.refresh_from_db()
    assert request.package_path == "" and request.package_sha256  # the proof stays


def test_audit_events_are_never_a_retention_target(tenant):
    policy = RetentionPolicy(
        tenant=tenant,
        category="audit",
        model="audit.AuditEvent",
        age_field="created_at",
        keep=timedelta(days=1),
    )
    with pytest.raises(ValidationError, match="never deleted by retention"):
        retention.clean_policy(policy)
    short = RetentionPolicy(
        tenant=tenant,
        category="idempotency-keys",
        model="core.IdempotencyRecord",
        age_field="created_at",
        keep=timedelta(hours=1),
    )
    with pytest.raises(ValidationError, match="at least"):
        retention.clean_policy(short)
    for kept in ("privacy.ErasureRecord", "privacy.SubjectRestriction", "privacy.ConsentRecord"):
        records = RetentionPolicy(
            tenant=tenant,
            category="x",
            model=kept,
            age_field="executed_at",
            keep=timedelta(seconds=1),
        )
        with pytest.raises(ValidationError, match="not a retention target"):
            retention.clean_policy(records)
    bad_field = RetentionPolicy(
        tenant=tenant,
        category="custom",
        model="alerts.Alert",
        age_field="title",
        keep=timedelta(days=1),
    )
    with pytest.raises(ValidationError, match="not a date"):
        retention.clean_policy(bad_field)


def test_the_beat_job_runs_each_tenant_once_from_three_in_its_own_time_zone(tenant):
    tenant.time_zone = "America/Edmonton"
    tenant.save()
    two_local = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)  # 02:30 in Edmonton (UTC-7)
    three_local = datetime(2026, 12, 7, 10, 5, tzinfo=UTC)

    assert tenant.slug not in retention.enforce_due(now=two_local)
    assert tenant.slug in retention.enforce_due(now=three_local)
    assert tenant.slug not in retention.enforce_due(now=three_local + timedelta(hours=1))
    run = RetentionRun.objects.get()
    assert run.local_date.isoformat() == "2026-12-07"
