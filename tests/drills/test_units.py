"""Pure rules: schema normalisation and comparisons, cron schedules, DSN validation and
redaction, and the report's text and round trip."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from apps.drills import services, verify
from apps.drills.models import Drill
from apps.drills.report import BackupInfo, DrillReport, Phase, TableCheck
from apps.drills.targets import redact, validate_dsn


def test_restored_expressions_compare_equal_modulo_casts_and_parentheses():
    source = {
        "index public.due: CREATE INDEX due ON public.d USING btree (at) WHERE ((status)::text "
        "= ANY ((ARRAY['pending'::character varying, 'retrying'::character varying])::text[]))"
    }
    restored = {
        "index public.due: CREATE INDEX due ON public.d USING btree (at) WHERE ((status)::text "
        "= ANY (ARRAY[('pending'::character varying)::text, ('retrying'::character varying)"
        "::text]))"
    }
    assert verify.compare_schema(source, restored) == []
    changed = {restored.pop().replace("'retrying'", "'failed'")}
    problems = verify.compare_schema(source, changed)
    assert len(problems) == 2
    assert problems[0].startswith("missing in the shadow: index public.due")
    assert problems[1].startswith("only in the shadow: index public.due")


def test_sequences_may_be_ahead_in_the_shadow_but_never_behind():
    assert verify.compare_sequences({"public.a_id_seq": 10}, {"public.a_id_seq": 12}) == []
    assert verify.compare_sequences({"public.a_id_seq": None}, {"public.a_id_seq": None}) == []
    behind = verify.compare_sequences({"public.a_id_seq": 10}, {"public.a_id_seq": 9})
    assert behind and "new rows would reuse ids" in behind[0]
    assert verify.compare_sequences({"public.b": 1}, {}) == [
        "sequence public.b missing in the shadow"
    ]


def test_table_comparison_names_counts_checksums_and_missing_tables():
    source = {"public.a": verify.TableSum(3, "aa"), "public.b": verify.TableSum(1, "bb")}
    shadow = {"public.a": verify.TableSum(2, "aa"), "public.c": verify.TableSum(0, "0")}
    assert verify.compare_tables(source, shadow) == [
        "table public.a: 2 rows restored, 3 in the backup",
        "table public.b missing in the shadow",
        "table public.c only in the shadow",
    ]


def test_the_default_schedule_is_saturday_two_in_the_morning_in_edmonton():
    drill = Drill(name="d", kind="backup_restore")
    monday = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)  # 12:00 in Edmonton
    at = services.next_run_at(drill, monday)
    assert at.isoformat() == "2026-11-28T02:00:00-07:00"
    drill.enabled = False
    assert services.next_run_at(drill, monday) is None
    for bad in ["0 2 * *", "61 2 * * 6", "0 2 * * funday"]:
        with pytest.raises(ValidationError):
            services.parse_schedule(bad)


def test_dsns_are_validated_and_never_shown_with_their_password():
    dsn = validate_dsn("postgresql://ops:p%40ss@db.internal:6432/billing?sslmode=require")
    assert "password=p@ss" in dsn or "password='p@ss'" in dsn
    assert redact(dsn) == "postgresql://ops@db.internal:6432/billing"
    assert redact("not a dsn ===") == "(unparsable DSN)"
    for bad, field_message in [
        ("", "needs a PostgreSQL DSN"),
        ("mysql://root@db/x", "Only postgresql://"),
        ("postgresql://ops@/billing", "must name host"),
        ("postgresql://ops@db.internal", "must name dbname"),
        ("postgresql://ops:secret@db:notaport/x", "is not a number"),
        ("postgresql://ops:secret%zz@db/x", "Not a valid PostgreSQL DSN"),
        ("host=db dbname", "Not a valid PostgreSQL DSN"),
    ]:
        with pytest.raises(ValidationError) as caught:
            validate_dsn(bad)
        message = " ".join(caught.value.message_dict["dsn"])
        assert field_message in message
        assert "secret" not in message


def test_a_report_renders_and_survives_its_stored_form():
    report = DrillReport(
        kind="backup_restore",
        engine="postgresql",
        target="postgresql://ops@db/app",
        started_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
        rto_target_seconds=900,
        rpo_target_seconds=86400,
        phases=[Phase("restore", "ok", 12.5, "into x")],
        tables=[TableCheck("public.a", 3, "aa", 3, "aa"), TableCheck("public.b", 1, "bb", 1, "bc")],
        mismatches=["table public.b: content checksum bc differs"],
        backup=BackupInfo("/b/x.dump", 100, "f" * 64, datetime(2026, 11, 21, tzinfo=UTC), True, 7),
        rto_seconds=20.0,
        rpo_seconds=30.0,
    )
    assert report.status == "failed" and report.rto_met and report.rpo_met
    text = report.render_text()
    assert "public.b" in text and "MISMATCH" in text and "Result: FAILED" in text
    from apps.audit.hashing import to_json_value

    again = DrillReport.from_dict(to_json_value(report.to_dict()))
    assert again.render_text() == text
    report.mismatches = []
    report.rto_seconds = 901
    assert report.status == "failed" and report.rto_met is False
