"""Rectification, restriction and objection, the dry run each planned right needs, masking
strategies one by one, and the restrictions applications read."""

from __future__ import annotations

from datetime import date, datetime

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent, EvidenceArtifact
from apps.privacy import identity, rights, services
from apps.privacy.masking import FieldSpec, masked, validate_specs
from apps.privacy.models import PrivacyRequest, Status, Strategy, SubjectRestriction
from apps.tenancy.models import Membership
from apps.tenancy.roles import Role
from tests.privacy.conftest import EMAIL, PERSONAL, declare_shop, seed_shop


@pytest.fixture
def officer(api, make_token, tenant):
    return api(make_token(tenant, Role.PRIVACY_OFFICER))


def _approved(request: PrivacyRequest) -> PrivacyRequest:
    for step in (Status.VERIFIED, Status.APPROVED):
        request = services.transition(request, step, note="identity checked")
    return request


# --- masking, pure --------------------------------------------------------------------------


def test_each_masking_strategy():
    key = b"k" * 32
    stamp = datetime(2026, 11, 23, 14, 5, 9)
    assert masked(FieldSpec("contact", Strategy.SET_NULL), "x", key=key, nullable=True) is None
    assert masked(FieldSpec("contact", Strategy.SET_NULL), "x", key=key, nullable=False) == ""
    assert masked(FieldSpec("x", Strategy.REPLACE, replacement="[gone]"), "x", key=key, nullable=1)
    hashed = masked(FieldSpec("contact", Strategy.KEYED_HASH), "a@b.c", key=key, nullable=True)
    again = masked(FieldSpec("contact", Strategy.KEYED_HASH), "a@b.c", key=key, nullable=True)
    other_key = masked(FieldSpec("c", Strategy.KEYED_HASH), "a@b.c", key=b"j" * 32, nullable=True)
    assert hashed == again != other_key and hashed.startswith("h:") and "a@b" not in hashed
    random_one = masked(FieldSpec("c", Strategy.RANDOM_STRING), "a", key=key, nullable=True)
    assert random_one != masked(FieldSpec("c", Strategy.RANDOM_STRING), "a", key=key, nullable=1)
    truncate = FieldSpec("activity", Strategy.TRUNCATE_DATE)
    assert masked(truncate, stamp, key=key, nullable=True) == datetime(2026, 11, 1)
    assert masked(truncate, date(1987, 3, 14), key=key, nullable=True) == date(1987, 3, 1)
    assert masked(FieldSpec("c", Strategy.SET_NULL), {"a": 1}, key=key, nullable=False) == {}


def test_column_specs_are_validated_naming_the_column():
    assert validate_specs({"email": {"category": "contact", "strategy": "keyed_hash"}}) == {}
    errors = validate_specs(
        {
            "email": {"category": "contact", "strategy": "shred"},
            "name": {"category": "fame"},
            "token": {"category": "secret"},
            "city": {"category": "contact", "strategy": "replace"},
            "x": {"category": "contact", "colour": "red"},
        }
    )
    assert "Unknown masking strategy 'shred'" in errors["columns.email"]
    assert "Unknown category 'fame'" in errors["columns.name"]
    assert "secret field must be masked" in errors["columns.token"]
    assert "needs a replacement" in errors["columns.city"]
    assert "Unknown keys" in errors["columns.x"]
    assert "columns" in validate_specs({})


# --- rectification --------------------------------------------------------------------------


def test_rectification_needs_known_sources_and_fields(officer):
    base = {"request_type": "rectification", "subject_email": EMAIL}
    missing = officer.post("/api/v1/privacy/requests", base, format="json")
    assert missing.status_code == 422 and "corrections" in missing.json()["errors"]
    bad = officer.post(
        "/api/v1/privacy/requests",
        {**base, "corrections": {"nowhere": {"x": 1}, "portal.user_accounts": {"password": "x"}}},
        format="json",
    )
    errors = bad.json()["errors"]
    assert bad.status_code == 422
    assert "No source nowhere" in errors["corrections.nowhere"][0]
    assert "cannot be rectified" in errors["corrections.portal.user_accounts"][0]
    assert not PrivacyRequest.objects.exists()


@pytest.mark.postgres
def test_rectification_previews_then_corrects_a_portal_account_and_an_external_table(
    tenant, officer, shop
):
    seed_shop(shop)
    declare_shop(tenant, shop)
    user = get_user_model().objects.create_user("ana", email=EMAIL, last_name="Silvaa")
    Membership.objects.create(tenant=tenant, user=user, role=Role.VIEWER)
    corrections = {
        "portal.user_accounts": {"last_name": "Silva"},
        "external.shop.public.customers": {"phone": "+1 780 555 0000"},
    }
    created = officer.post(
        "/api/v1/privacy/requests",
        {"request_type": "rectification", "subject_email": EMAIL, "corrections": corrections},
        format="json",
    ).json()
    request = _approved(PrivacyRequest.objects.get(pk=created["id"]))

    plan = officer.post(f"/api/v1/privacy/requests/{request.pk}/preview").json()["plan"]
    assert {s["source"]: s["rows"] for s in plan["sources"]} == {
        "external.shop.public.customers": 1,
        "portal.user_accounts": 1,
    }
    request = services.transition(PrivacyRequest.objects.get(pk=request.pk), Status.IN_PROGRESS)
    request = rights.execute(request)

    assert request.status == Status.COMPLETED
    user.refresh_from_db()
    assert user.last_name == "Silva"
    with psycopg.connect(shop) as conn:
        phone = conn.execute("SELECT phone FROM customers WHERE lower(email) = %s", [EMAIL])
        assert phone.fetchone()[0] == "+1 780 555 0000"
    evidence = EvidenceArtifact.objects.get(pk=request.evidence_id)
    assert evidence.kind == "privacy_rectification"
    assert {s["source"]: s["rows"] for s in evidence.content["sources"]} == {
        "external.shop.public.customers": 1,
        "portal.user_accounts": 1,
    }


@pytest.mark.postgres
def test_an_unreachable_source_in_the_dry_run_blocks_the_start(tenant, shop):
    from apps.privacy.models import ExternalDatabase
    from opsportal import crypto

    seed_shop(shop)
    database = declare_shop(tenant, shop)
    request = _approved(
        services.create_request(tenant, request_type="erasure", subject_email=EMAIL)
    )
    # The shop's server goes away after it was declared (a save would refuse this DSN now).
    ExternalDatabase.objects.filter(pk=database.pk).update(
        dsn_ciphertext=crypto.encrypt("postgresql://nobody@127.0.0.1:1/shop"),
        dsn_hint="postgresql://nobody@127.0.0.1:1/shop",
    )
    plan = rights.preview(request).plan
    assert plan["errors"] == ["external.shop.public.customers", "external.shop.public.orders"]
    failed = [s for s in plan["sources"] if s["error"]]
    assert all(s["error"].startswith("cannot connect to postgresql://nobody@") for s in failed)
    with pytest.raises(ValidationError, match="could not reach"):
        services.transition(PrivacyRequest.objects.get(pk=request.pk), Status.IN_PROGRESS)
    assert PrivacyRequest.objects.get(pk=request.pk).status == Status.APPROVED
    assert ExternalDatabase.objects.get().dsn_hint == "postgresql://nobody@127.0.0.1:1/shop"


# --- restriction and objection --------------------------------------------------------------


def test_a_restriction_is_recorded_per_purpose_read_by_applications_and_lifted(
    tenant, officer, api, make_token
):
    created = officer.post(
        "/api/v1/privacy/requests",
        {
            "request_type": "restriction",
            "subject_external_id": "cust-77",
            "purposes": ["marketing-email", "profiling"],
        },
        format="json",
    ).json()
    request = _approved(PrivacyRequest.objects.get(pk=created["id"]))
    request = services.transition(request, Status.IN_PROGRESS, note="restrict")

    assert request.status == Status.COMPLETED  # recorded at once
    app = api(make_token(tenant, Role.VIEWER))  # an application's read-only token
    body = app.get("/api/v1/privacy/subjects/cust-77/restrictions").json()
    assert body["stopped_purposes"] == ["marketing-email", "profiling"]
    assert body["all_processing_stopped"] is False
    assert (
        app.get("/api/v1/privacy/subjects/someone-else/restrictions").json()["restrictions"] == []
    )
    row = SubjectRestriction.objects.get(purpose="profiling")
    assert row.subject_key == identity.subject_key(tenant, "external_id", "cust-77")
    assert "cust-77" not in str(SubjectRestriction.objects.values())  # keyed, not in clear

    url = f"/api/v1/privacy/subjects/cust-77/restrictions/{row.pk}/lift"
    assert app.post(url, {"note": "x"}, format="json").status_code == 403
    assert officer.post(url, {}, format="json").status_code == 400
    lifted = officer.post(url, {"note": "the subject's dispute is settled"}, format="json")
    assert lifted.status_code == 200 and lifted.json()["lifted_at"]
    body = app.get("/api/v1/privacy/subjects/cust-77/restrictions").json()
    assert body["stopped_purposes"] == ["marketing-email"]
    assert AuditEvent.objects.filter(action="privacy_restriction.lifted").count() == 1


def test_an_objection_without_purposes_stops_every_purpose(tenant, officer):
    request = _approved(
        services.create_request(tenant, request_type="objection", subject_email="p@example.com")
    )
    services.transition(request, Status.IN_PROGRESS)
    body = officer.get("/api/v1/privacy/subjects/P@example.com/restrictions").json()
    assert body["all_processing_stopped"] is True
    assert body["restrictions"][0]["kind"] == "objection"


def test_purposes_belong_to_restrictions_only_and_a_dry_run_to_planned_rights(tenant, officer):
    wrong = officer.post(
        "/api/v1/privacy/requests",
        {"request_type": "access", "subject_email": EMAIL, "purposes": ["x"]},
        format="json",
    )
    assert wrong.status_code == 422 and "purposes" in wrong.json()["errors"]
    request = _approved(services.create_request(tenant, request_type="access", subject_email=EMAIL))
    refused = officer.post(f"/api/v1/privacy/requests/{request.pk}/preview")
    assert refused.status_code == 422 and "request_type" in refused.json()["errors"]


def test_the_subject_key_is_per_tenant_and_survives_erasure(tenant, other_tenant):
    mine = identity.subject_key(tenant, "email", PERSONAL["full_name"])
    theirs = identity.subject_key(other_tenant, "email", PERSONAL["full_name"])
    assert mine and theirs and mine != theirs
    assert identity.subject_key(tenant, "email", "A@B.C") == identity.subject_key(
        tenant, "email", " a@b.c "
    )


def test_erasing_a_member_account_pseudonymises_it_and_it_can_never_log_in(tenant, other_tenant):
    user = get_user_model().objects.create_user(
        "jlee", email="jordan.lee@example.com", password="pw-123456789", first_name="Jordan"
    )
    Membership.objects.create(tenant=tenant, user=user, role=Role.VIEWER)
    request = _approved(
        services.create_request(
            tenant, request_type="erasure", subject_email="Jordan.Lee@example.com"
        )
    )
    plan = rights.preview(request).plan
    accounts = next(s for s in plan["sources"] if s["source"] == "portal.user_accounts")
    assert accounts["rows"] == 1 and accounts["fields"]["username"]["strategy"] == "keyed_hash"
    request = services.transition(PrivacyRequest.objects.get(pk=request.pk), Status.IN_PROGRESS)

    assert rights.execute(request).status == Status.COMPLETED

    user.refresh_from_db()
    assert user.username.startswith("h:") and user.email == "" and user.first_name == ""
    assert not user.has_usable_password()
    assert user.date_joined.day == 1  # truncated to the month

    # The same person is not the other tenant's to erase.
    stranger = get_user_model().objects.create_user("kim", email="kim@example.com")
    Membership.objects.create(tenant=other_tenant, user=stranger, role=Role.VIEWER)
    other = _approved(
        services.create_request(tenant, request_type="erasure", subject_email="kim@example.com")
    )
    sources = {s["source"]: s["rows"] for s in rights.preview(other).plan["sources"]}
    assert sources["portal.user_accounts"] == 0


def test_an_account_shared_with_another_tenant_is_retained_not_erased(tenant, other_tenant):
    user = get_user_model().objects.create_user("sam", email="sam@example.com", password="x" * 12)
    Membership.objects.create(tenant=tenant, user=user, role=Role.VIEWER)
    Membership.objects.create(tenant=other_tenant, user=user, role=Role.TENANT_ADMIN)
    request = _approved(
        services.create_request(tenant, request_type="erasure", subject_email="sam@example.com")
    )
    rights.preview(request)
    request = services.transition(PrivacyRequest.objects.get(pk=request.pk), Status.IN_PROGRESS)

    assert rights.execute(request).status == Status.COMPLETED

    user.refresh_from_db()
    assert user.email == "sam@example.com" and user.has_usable_password()
    outcome = {
        e["source"]: e for e in request.__class__.objects.get(pk=request.pk).outcome["sources"]
    }
    assert outcome["portal.user_accounts"]["status"] == "retained"
    assert "another tenant" in outcome["portal.user_accounts"]["retained"]["account"]


def test_restrictions_are_found_by_email_and_by_external_id(tenant, officer):
    request = _approved(
        services.create_request(
            tenant,
            request_type="objection",
            subject_email="lee@example.com",
            subject_external_id="cust-42",
            purposes=["ads"],
        )
    )
    services.transition(request, Status.IN_PROGRESS)
    for subject in ("lee@example.com", "cust-42"):
        body = officer.get(f"/api/v1/privacy/subjects/{subject}/restrictions").json()
        assert body["stopped_purposes"] == ["ads"], subject


def test_bookkeeping_fields_cannot_be_rectified(tenant):
    refused = {
        "privacy.requests": {"status": "completed"},
        "privacy.consents": {"granted": True},
        "portal.api_replays": {"endpoint": "/x"},
        "portal.user_accounts": {"is_superuser": True},
    }
    for source, changes in refused.items():
        with pytest.raises(ValidationError):
            rights.clean_corrections(tenant, {source: changes})
    assert rights.clean_corrections(tenant, {"portal.user_accounts": {"last_name": "Lee"}})


def test_rotate_secrets_re_encrypts_the_tenant_hash_key(tenant):
    from cryptography.fernet import Fernet
    from django.core.management import call_command
    from django.test import override_settings

    from opsportal import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        crypto._fernet.cache_clear()
        before = identity.subject_key(tenant, "email", "a@b.cd")
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        crypto._fernet.cache_clear()
        call_command("rotate_secrets")
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        crypto._fernet.cache_clear()
        assert identity.subject_key(tenant, "email", "a@b.cd") == before
    crypto._fernet.cache_clear()
