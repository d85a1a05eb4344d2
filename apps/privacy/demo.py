"""Demo privacy data, through the same services as production: requests in every state (an
access request due in a few days with its package built, a CCPA erasure waiting for the
subject's code, an overdue PIPEDA portability request, a paused rectification, an objection
recorded per purpose, a completed erasure with its per-source records and legal hold, and a
duplicate), consent records, required consent purposes, the Article 30 record, and a retention
run with its report."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.privacy import consents, retention, rights, services
from apps.privacy.models import PrivacyRequest, PrivacySettings, ProcessingActivity, Status
from apps.tenancy.models import Membership, Tenant
from apps.tenancy.roles import Role

BY = "privacy.demo"


def load_demo(tenant: Tenant) -> int:
    if PrivacyRequest.objects.for_tenant(tenant).exists():
        return 0
    now = timezone.now()

    def received(days_ago: int, **fields) -> PrivacyRequest:
        return services.create_request(tenant, received_at=now - timedelta(days=days_ago), **fields)

    def steps(request: PrivacyRequest, *targets: str, note: str = "demo") -> PrivacyRequest:
        for target in targets:
            request = services.transition(request, target, note=note, by=BY)
        return request

    _consents(tenant, now)
    _member(tenant, "m.alharbi", "m.alharbi@example.com", "Mohammed", "Alharbi")
    _member(tenant, "former.contractor", "c.dubois@example.com", "Claire", "Dubois")

    access = received(
        26,
        request_type="access",
        jurisdiction="gdpr",
        subject_email="ana.silva@example.com",
        channel="web form",
    )
    access = steps(access, Status.VERIFIED, Status.APPROVED, note="matched the account's email")
    services.complete_with_package(steps(access, Status.IN_PROGRESS))
    received(
        3,
        request_type="access",
        jurisdiction="gdpr",
        subject_email="ana.silva@example.com",
        channel="email",
    )  # recorded as a duplicate
    received(
        2,
        request_type="erasure",
        jurisdiction="ccpa",
        subject_email="jordan.lee@example.com",
        channel="web form",
    )
    overdue = received(
        34,
        request_type="portability",
        jurisdiction="pipeda",
        subject_external_id="cust-20931",
        channel="phone",
    )
    steps(overdue, Status.IDENTITY_PENDING, Status.REQUIRES_INPUT, note="awaiting proof of ID")
    paused = received(
        10,
        request_type="rectification",
        jurisdiction="pdpl",
        subject_email="m.alharbi@example.com",
        channel="email",
        corrections={"portal.user_accounts": {"last_name": "Al-Harbi"}},
    )
    paused = steps(paused, Status.VERIFIED, note="verified by a video call")
    rights.preview(paused)
    steps(paused, Status.PAUSED, note="waiting for the subject to confirm the spelling")
    objection = received(
        40,
        request_type="objection",
        jurisdiction="gdpr",
        subject_email="p.novak@example.com",
        channel="web form",
        purposes=["marketing-email", "profiling"],
    )
    steps(objection, Status.VERIFIED, Status.APPROVED, Status.IN_PROGRESS)  # recorded at once
    erasure = received(
        12,
        request_type="erasure",
        jurisdiction="gdpr",
        subject_email="c.dubois@example.com",
        channel="email",
        notes="Left the company in October; asks us to forget her account.",
    )
    erasure = steps(erasure, Status.VERIFIED, Status.APPROVED, note="confirmed by HR")
    rights.preview(erasure)
    rights.execute(steps(erasure, Status.IN_PROGRESS))  # what the worker runs

    PrivacySettings.objects.filter(tenant=tenant).update(
        required_purposes=["marketing-email", "product-analytics"]
    )
    _register(tenant)
    _expired_replays(tenant, now)
    retention.enforce(tenant)
    return PrivacyRequest.objects.for_tenant(tenant).count()


def _expired_replays(tenant: Tenant, now) -> None:
    """Yesterday's API replays, past their 24 h: the demo's retention run deletes them."""
    from apps.core.models import IdempotencyRecord

    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(
            tenant=tenant,
            key=f"demo-{n}",
            endpoint="/api/v1/compliance/runs",
            request_hash="0" * 64,
            response_status=201,
            response_body={"demo": n},
        )
        for n in range(40)
    )
    IdempotencyRecord.objects.filter(tenant=tenant, key__startswith="demo-").update(
        created_at=now - timedelta(hours=30)
    )


def _member(tenant: Tenant, username: str, email: str, first: str, last: str) -> None:
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"email": email, "first_name": first, "last_name": last}
    )
    Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": Role.VIEWER})


def _consents(tenant: Tenant, now) -> None:
    history = (
        ("ana.silva@example.com", "marketing-email", 300, True, "2026-01"),
        ("ana.silva@example.com", "marketing-email", 20, False, "2026-10"),
        ("ana.silva@example.com", "product-analytics", 300, True, "2026-01"),
        ("c.dubois@example.com", "product-analytics", 200, True, "2026-01"),
        ("p.novak@example.com", "marketing-email", 90, True, "2026-01"),
    )
    for subject, purpose, days_ago, granted, version in history:
        consents.record_consent(
            tenant,
            subject=subject,
            purpose=purpose,
            granted=granted,
            policy_version=version,
            source="preference centre",
            given_at=now - timedelta(days=days_ago),
        )


def _register(tenant: Tenant) -> None:
    entries = (
        {
            "name": "Customer accounts and orders",
            "purposes": "Create and run customer accounts; take, ship and invoice orders.",
            "legal_basis": "contract",
            "subject_categories": "customers",
            "data_categories": "contact details, delivery addresses, order and payment history",
            "recipients": "payment processor; carriers",
            "third_country_transfers": "none",
            "retention": "account lifetime + 2 years; invoices 10 years (tax law)",
            "security_measures": "TLS, encryption at rest, SSO with MFA, quarterly access reviews",
            "dpo_contact": "dpo@example.com",
        },
        {
            "name": "Marketing email",
            "purposes": "Newsletters and product announcements to subscribers who opted in.",
            "legal_basis": "consent",
            "subject_categories": "subscribers",
            "data_categories": "email address, consent history, open and click events",
            "recipients": "email delivery provider (processor)",
            "third_country_transfers": "United States: EU-US Data Privacy Framework; SCCs",
            "retention": "until consent is withdrawn; consent records 3 years after",
            "security_measures": "access limited to the marketing team; DPA with the provider",
            "dpo_contact": "dpo@example.com",
        },
        {
            "name": "Operations portal accounts",
            "role": "controller",
            "purposes": "Access to the operations portal; audit of who changed what.",
            "legal_basis": "legitimate_interests",
            "subject_categories": "employees and contractors",
            "data_categories": "name, work email, login times, audit trail of actions",
            "recipients": "none",
            "retention": "account lifetime; the audit trail is kept (accountability)",
            "security_measures": "hashed passwords, lockout after failed logins, RLS per tenant",
            "dpo_contact": "dpo@example.com",
        },
    )
    for entry in entries:
        activity = ProcessingActivity(tenant=tenant, **entry)
        activity.save(audit_action="processing_activity.saved")
