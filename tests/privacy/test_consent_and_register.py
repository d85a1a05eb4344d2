"""Consent records (append-only, current state and history, streamed export) and the
Article 30 record of processing activities (admin, JSON/CSV export, printable page)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from apps.privacy.models import ConsentRecord, ProcessingActivity
from apps.tenancy.roles import Role


@pytest.fixture
def officer(api, make_token, tenant):
    return api(make_token(tenant, Role.PRIVACY_OFFICER))


def _consent(client, granted: bool, when: str, version: str = "2026-01"):
    return client.post(
        "/api/v1/privacy/consents",
        {
            "subject": "Ana@Example.com",
            "purpose": "marketing-email",
            "granted": granted,
            "policy_version": version,
            "source": "signup form",
            "given_at": when,
        },
        format="json",
    )


def test_consent_history_and_current_state(officer, api, make_token, tenant):
    app = api(make_token(tenant, Role.OPERATOR))
    assert _consent(app, True, "2026-01-10T10:00:00Z").status_code == 201
    assert _consent(app, False, "2026-06-01T08:00:00Z", "2026-05").status_code == 201
    state = officer.get("/api/v1/privacy/consents", {"subject": "ana@example.com"}).json()
    assert state["purposes"]["marketing-email"]["granted"] is False
    assert state["purposes"]["marketing-email"]["policy_version"] == "2026-05"
    assert [h["granted"] for h in state["history"]] == [True, False]
    assert officer.get("/api/v1/privacy/consents").status_code == 400  # bad input
    assert app.get("/api/v1/privacy/consents", {"subject": "x"}).status_code == 403
    future = _consent(app, True, "2099-01-01T00:00:00Z")
    assert future.status_code == 422 and "given_at" in future.json()["errors"]


def test_consent_records_are_append_only(tenant):
    record = ConsentRecord.objects.create(
        tenant=tenant,
        subject="a@example.com",
        purpose="analytics",
        granted=True,
        policy_version="1",
        source="app",
        given_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    record.granted = False
    with pytest.raises(ValueError, match="append-only"):
        record.save()
    with pytest.raises(ValueError, match="append-only"):
        record.delete()


@pytest.mark.postgres
def test_the_app_role_cannot_change_or_delete_consent_records(tenant):
    from django.conf import settings
    from django.db.utils import ProgrammingError

    ConsentRecord.objects.create(
        tenant=tenant,
        subject="a@example.com",
        purpose="analytics",
        granted=True,
        policy_version="1",
        source="app",
        given_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{settings.DATABASE_APP_ROLE}"')
        cursor.execute("SELECT set_config('opsportal.all_tenants', 'on', false)")
        cursor.execute("SAVEPOINT before_update")
        with pytest.raises(ProgrammingError, match="permission denied"):
            cursor.execute("UPDATE privacy_consentrecord SET granted = false")
        cursor.execute("ROLLBACK TO SAVEPOINT before_update")
        cursor.execute("RESET ROLE")


def test_consent_export_streams_json_and_csv(officer, api, make_token, tenant):
    app = api(make_token(tenant, Role.OPERATOR))
    for day in range(1, 4):
        _consent(app, day % 2 == 1, f"2026-02-0{day}T00:00:00Z")
    response = officer.get("/api/v1/privacy/consents/export", {"format": "json"})
    assert response.status_code == 200 and response.streaming
    rows = json.loads(b"".join(response.streaming_content))
    assert len(rows) == 3 and rows[0]["subject"] == "ana@example.com"
    response = officer.get("/api/v1/privacy/consents/export", {"format": "csv"})
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["granted"] for r in table] == ["True", "False", "True"]
    assert officer.get("/api/v1/privacy/consents/export", {"format": "xml"}).status_code == 404


def test_the_article_30_record_exports_and_prints(officer, tenant, admin_client_for):
    ProcessingActivity.objects.create(
        tenant=tenant,
        name="Customer support",
        purposes="Answer support tickets",
        legal_basis="contract",
        subject_categories="customers",
        data_categories="contact details, ticket history",
        recipients="Zendesk (processor)",
        third_country_transfers="USA: standard contractual clauses",
        retention="3 years after the last ticket",
        security_measures="SSO, encryption at rest, access reviews",
        dpo_contact="dpo@example.com",
    )
    exported = officer.get("/api/v1/privacy/activities", {"format": "json"}).json()
    assert exported["activities"][0]["legal_basis"] == "contract"
    csv_text = officer.get("/api/v1/privacy/activities", {"format": "csv"}).content.decode()
    assert "Customer support" in csv_text and "third_country_transfers" in csv_text
    page = admin_client_for(tenant).get("/admin/privacy/processingactivity/register/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Record of processing activities" in html and "standard contractual clauses" in html


@pytest.mark.postgres
def test_consent_completeness_names_subjects_with_data_but_no_record(tenant, shop):
    from django.core.management import CommandError, call_command

    from apps.privacy.models import PrivacySettings
    from tests.privacy.conftest import declare_shop, record_portal_consent, seed_shop

    seed_shop(shop)  # ana (as ANA.SILVA@...) and bob, in customers and orders
    declare_shop(tenant, shop)
    record_portal_consent(tenant)  # ana: marketing-email
    PrivacySettings.objects.update_or_create(
        tenant=tenant, defaults={"required_purposes": ["marketing-email", "analytics"]}
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="3 missing consent record"):
        call_command("consent_completeness", "--tenant", tenant.slug, "--json", stdout=out)
    report = json.loads(out.getvalue())[tenant.slug]
    assert report["subjects_with_data"] == 2
    assert report["missing"] == {
        "analytics": ["ana.silva@example.com", "bob@example.com"],
        "marketing-email": ["bob@example.com"],
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_streamed_export_has_the_records_under_gunicorn_as_the_app_role(
    tenant, make_token, portal_url
):
    """The stream is consumed after the request's database scope is cleared: the generator
    must enter the tenant's scope itself, or row-level security shows nothing."""
    import urllib.request

    from tests.privacy.conftest import record_portal_consent

    record_portal_consent(tenant, "a@example.com")
    record_portal_consent(tenant, "b@example.com")
    token = make_token(tenant, Role.PRIVACY_OFFICER)
    for fmt in ("json", "csv"):
        request = urllib.request.Request(  # noqa: S310
            f"{portal_url}/api/v1/privacy/consents/export?format={fmt}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body = response.read().decode()
        assert "a@example.com" in body and "b@example.com" in body, (fmt, body)
