"""One subject whose data spans the portal, an external PostgreSQL database (a second real
database) and a webhook connector (a real HTTP server on 127.0.0.1).

Access: every personal value is in the package, no secret is, the manifest's hashes match the
files. Erasure: afterwards no personal value is left anywhere in either database (every table
scanned, and a pg_dump of each), except the legal-hold fields, which are reported as retained."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from apps.audit.models import EvidenceArtifact
from apps.drills import pgtools
from apps.drills.targets import portal_target
from apps.privacy import rights, services
from apps.privacy.models import ErasureRecord, PrivacyRequest, Status, SubjectRestriction
from apps.tenancy.roles import Role
from tests.privacy.conftest import (
    EMAIL,
    INVOICE,
    INVOICE_HOLD,
    PERSONAL,
    SECRETS,
    declare_shop,
    record_portal_consent,
    seed_shop,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
LEGAL_HOLD_COLUMNS = {("privacy_consentrecord", "subject")}


@pytest.fixture
def subject(tenant, shop, crm, api, make_token, settings, tmp_path):
    """The subject's data in three sources, and an officer's API client."""
    settings.EVIDENCE_DIR = tmp_path / "evidence"
    seed_shop(shop)
    declare_shop(tenant, shop)
    record_portal_consent(tenant)
    return api(make_token(tenant, Role.PRIVACY_OFFICER))


def _received(officer, request_type: str, key: str, **extra) -> PrivacyRequest:
    body = {
        "request_type": request_type,
        "subject_email": EMAIL.title(),
        "notes": f"Call me back on {PERSONAL['phone']}.",
        **extra,
    }
    response = officer.post(
        "/api/v1/privacy/requests", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 201, response.json()
    request = PrivacyRequest.objects.get(pk=response.json()["id"])
    for step in (Status.VERIFIED, Status.APPROVED):
        request = services.transition(request, step, note="identity checked by phone")
    return request


def _package_text(request: PrivacyRequest) -> tuple[dict, str]:
    with zipfile.ZipFile(request.package_path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for source in manifest["sources"]:
            for name, digest in source["files"].items():
                assert hashlib.sha256(archive.read(name)).hexdigest() == digest, name
        text = " ".join(archive.read(name).decode() for name in archive.namelist())
    return manifest, text


def test_the_access_package_holds_every_personal_value_of_three_sources_and_no_secret(subject):
    request = _received(subject, "access", "access-1")
    request = services.transition(request, Status.IN_PROGRESS, note="export")
    request = services.complete_with_package(request)  # what the worker runs

    assert request.status == Status.COMPLETED
    manifest, text = _package_text(request)
    rows = {s["source"]: s["rows"] for s in manifest["sources"]}
    assert rows["external.shop.public.customers"] == 1  # matched case-insensitively
    assert rows["external.shop.public.orders"] == 3
    assert rows["connector.crm"] == 1
    assert rows["privacy.consents"] == 1 and rows["privacy.requests"] == 1
    for value in (EMAIL, *PERSONAL.values()):
        assert value in text or value.upper() in text, value
    for value in SECRETS.values():
        assert value not in text, value
    assert "sk_live_" not in text and "pbkdf2_sha256" not in text  # secret fields dropped
    assert "10.0.0.7" in text and '"ref": "' in text  # inet and uuid columns, as text
    assert manifest["redactions"] == {"api_key": 1, "card_number": 1, "url_password": 1}
    evidence = EvidenceArtifact.objects.get(pk=request.evidence_id)
    assert EMAIL not in json.dumps(evidence.content)  # evidence names the subject by key


def test_an_unknown_subject_gets_a_valid_empty_package(subject):
    request = _received(subject, "access", "access-2", subject_email="nobody@example.com")
    request = services.transition(request, Status.IN_PROGRESS, note="export")
    request = services.complete_with_package(request)
    manifest, _ = _package_text(request)
    assert request.status == Status.COMPLETED
    # Only the request itself (and the API's 24 h replay of its answer), nothing else.
    held = {s["source"]: s["rows"] for s in manifest["sources"] if s["rows"]}
    assert held == {"privacy.requests": 1, "portal.api_replays": 1}


def _portal_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        return [row[0] for row in cursor.fetchall()]


def _found_in(conninfo: str, tables: list[str], values: list[str]) -> dict[str, list[str]]:
    """Which tables hold which values anywhere in a row (each row cast to text)."""
    found: dict[str, list[str]] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in tables:
            for value in values:
                query = sql.SQL("SELECT count(*) FROM {} AS t WHERE t::text ILIKE %s").format(
                    sql.Identifier(table)
                )
                if conn.execute(query, [f"%{value}%"]).fetchone()[0]:
                    found.setdefault(table, []).append(value)
    return found


def _pg_dump(conninfo: str, *exclude_data: str) -> str:
    """A data-only pg_dump of a database, as a restore would see it."""
    params = conninfo_to_dict(conninfo)
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = str(params.pop("password"))
    args = [pgtools.binary("pg_dump"), "--data-only", f"--dbname={make_conninfo(**params)}"]
    args += [f"--exclude-table-data={table}" for table in exclude_data]
    return subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout


def test_erasure_leaves_no_personal_value_anywhere_but_legal_holds(subject, crm, shop):
    access = services.transition(_received(subject, "access", "a-3"), Status.IN_PROGRESS)
    access = services.complete_with_package(access)
    package_file = Path(access.package_path)
    request = _received(subject, "erasure", "erase-1")

    refused = subject.post(
        f"/api/v1/privacy/requests/{request.pk}/transition", {"to": "in_progress"}, format="json"
    )
    assert refused.status_code == 422 and "plan" in refused.json()["errors"]  # dry run first

    planned = subject.post(f"/api/v1/privacy/requests/{request.pk}/preview").json()["plan"]
    by_source = {s["source"]: s for s in planned["sources"]}
    assert by_source["external.shop.public.customers"]["rows"] == 1
    orders = by_source["external.shop.public.orders"]
    assert orders["rows"] == 3 and orders["fields"]["shipping_address"]["values"] == 3
    assert orders["fields"]["invoice_number"]["legal_hold"] == INVOICE_HOLD
    assert by_source["connector.crm"]["rows"] == 1
    assert crm.records.get(EMAIL), "a dry run changes nothing"

    started = subject.post(
        f"/api/v1/privacy/requests/{request.pk}/transition", {"to": "in_progress"}, format="json"
    )
    assert started.status_code == 200, started.json()
    # Processing stops at once, before the worker redacts anything (the soft delete).
    stopped = subject.get(f"/api/v1/privacy/subjects/{EMAIL}/restrictions").json()
    assert stopped["all_processing_stopped"] is True

    request = rights.execute(PrivacyRequest.objects.get(pk=request.pk))  # the worker's job

    assert request.status == Status.COMPLETED, request.outcome
    records = {r.source: r for r in ErasureRecord.objects.filter(request=request)}
    assert records["external.shop.public.customers"].rows == 1
    assert records["external.shop.public.orders"].retained == {"invoice_number": INVOICE_HOLD}
    assert records["privacy.consents"].status == ErasureRecord.RETAINED
    assert records["connector.crm"].rows == 1 and EMAIL not in crm.records
    assert not package_file.exists(), "the earlier access package is deleted with the data"
    erased_request = PrivacyRequest.objects.get(pk=request.pk)
    assert erased_request.subject_email == "" and erased_request.subject_key
    assert erased_request.erased_at and erased_request.evidence_id

    values = [EMAIL, *(v for k, v in PERSONAL.items() if not k.startswith("crm"))]
    portal = connection.settings_dict["NAME"]
    found = _found_in(portal_target().with_dbname(portal), _portal_tables(), values)
    assert found == {"privacy_consentrecord": [EMAIL]}, found  # the legal hold, nothing else
    assert _found_in(shop, ["customers", "orders"], values) == {}
    dump = _pg_dump(portal_target().with_dbname(portal), "privacy_consentrecord")
    assert not [v for v in values if v.lower() in dump.lower()]
    shop_dump = _pg_dump(shop)
    assert not [v for v in values if v.lower() in shop_dump.lower()]
    assert f"{INVOICE}-0" in shop_dump  # retained for the tax law
    assert "Bob Other" in shop_dump and "1987-03-01" in shop_dump  # others kept; date truncated


def test_a_failing_connector_leaves_the_request_failed_and_a_retry_finishes_it(subject, crm):
    request = _received(subject, "erasure", "erase-2")
    rights.preview(request)
    request = services.transition(PrivacyRequest.objects.get(pk=request.pk), Status.IN_PROGRESS)
    crm.mode = "down"

    request = rights.execute(request)

    assert request.status == Status.FAILED and "connector.crm" in request.last_note
    records = {r.source: r.status for r in ErasureRecord.objects.filter(request=request)}
    assert records["connector.crm"] == ErasureRecord.FAILED
    assert records["external.shop.public.customers"] == ErasureRecord.DONE
    assert "privacy.requests" not in records  # the identity is kept for the retry
    outcome = {s["source"]: s["status"] for s in request.outcome["sources"]}
    assert outcome["privacy.requests"] == "not started"
    assert PrivacyRequest.objects.get(pk=request.pk).subject_email == EMAIL

    crm.mode = "ok"
    calls_before = len(crm.calls)
    request = services.transition(request, Status.IN_PROGRESS, note="CRM is back")
    request = rights.execute(request)

    assert request.status == Status.COMPLETED
    assert len(crm.calls) == calls_before + 1  # only the failed source was asked again
    shop_records = ErasureRecord.objects.filter(source="external.shop.public.customers")
    assert shop_records.count() == 1, "sources already done are not erased twice"


def test_replay_after_a_restore_erases_the_subject_again(subject, shop):
    request = _received(subject, "erasure", "erase-3")
    rights.preview(request)
    request = services.transition(PrivacyRequest.objects.get(pk=request.pk), Status.IN_PROGRESS)
    assert rights.execute(request).status == Status.COMPLETED
    assert _found_in(shop, ["customers", "orders"], [EMAIL]) == {}

    seed_shop(shop, orders=2)  # the shop restored from a backup older than the erasure
    assert _found_in(shop, ["customers", "orders"], [EMAIL]) != {}
    today = timezone.now().date().isoformat()
    out = io.StringIO()
    call_command("replay_erasures", "--since", today, stdout=out)

    assert "shop.public.customers: 1 row(s) erased again" in out.getvalue()
    assert _found_in(shop, ["customers", "orders"], [EMAIL, PERSONAL["full_name"]]) == {}
    with psycopg.connect(shop) as conn:
        bobs = conn.execute("SELECT count(*) FROM customers WHERE email = 'bob@example.com'")
        assert bobs.fetchone()[0] == 2  # nobody else is touched
    assert ErasureRecord.objects.filter(replayed_at__isnull=False).exists()
    assert SubjectRestriction.objects.filter(kind="erasure").count() == 1  # one key: email only

    again = io.StringIO()
    call_command("replay_erasures", "--since", today, stdout=again)
    assert "0 row(s) erased again" in again.getvalue().splitlines()[-1]  # idempotent


def test_replay_reads_the_journal_when_the_portal_database_itself_was_restored(subject, shop):
    request = _received(subject, "erasure", "erase-4")
    rights.preview(request)
    request = services.transition(PrivacyRequest.objects.get(pk=request.pk), Status.IN_PROGRESS)
    assert rights.execute(request).status == Status.COMPLETED
    # Both restored from before the erasure: the portal lost its records, the shop its masking.
    ErasureRecord.objects.all().delete()
    seed_shop(shop, orders=1)

    call_command("replay_erasures", "--since", timezone.now().date().isoformat())

    assert _found_in(shop, ["customers", "orders"], [EMAIL, PERSONAL["full_name"]]) == {}
