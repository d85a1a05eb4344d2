"""Demo privacy requests: an access request under GDPR due in a few days, a CCPA erasure
waiting for the subject's code, a PIPEDA request that is overdue, a paused one, a completed one,
and a duplicate recorded as such."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.privacy import consents, services
from apps.privacy.models import PrivacyRequest, ProcessingActivity, Status
from apps.tenancy.models import Tenant


def load_demo(tenant: Tenant) -> int:
    if PrivacyRequest.objects.for_tenant(tenant).exists():
        return 0
    now = timezone.now()

    def received(days_ago: int, **fields) -> PrivacyRequest:
        return services.create_request(tenant, received_at=now - timedelta(days=days_ago), **fields)

    access = received(
        26,
        request_type="access",
        jurisdiction="gdpr",
        subject_email="ana.silva@example.com",
        channel="web form",
    )
    services.transition(
        access, Status.VERIFIED, note="matched the account's verified email", by="privacy.demo"
    )
    services.transition(access, Status.APPROVED, by="privacy.demo")
    received(
        3,
        request_type="access",
        jurisdiction="gdpr",
        subject_email="ana.silva@example.com",
        channel="email",
    )  # the same request again: recorded as a duplicate
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
    services.transition(overdue, Status.IDENTITY_PENDING, note="asked for ID", by="privacy.demo")
    services.transition(
        overdue, Status.REQUIRES_INPUT, note="awaiting proof of identity", by="privacy.demo"
    )
    paused = received(
        10,
        request_type="rectification",
        jurisdiction="pdpl",
        subject_email="m.alharbi@example.com",
        channel="email",
        corrections={"portal.user_accounts": {"last_name": "Al-Harbi"}},
    )
    services.transition(
        paused, Status.PAUSED, note="waiting for the corrected address", by="privacy.demo"
    )
    done = received(
        40,
        request_type="objection",
        jurisdiction="gdpr",
        subject_email="p.novak@example.com",
        channel="web form",
        purposes=["marketing-email", "profiling"],
    )
    # Starting an objection records it per purpose and completes the request.
    for step in (Status.VERIFIED, Status.APPROVED, Status.IN_PROGRESS):
        services.transition(done, step, note="demo", by="privacy.demo")
    for days_ago, granted, version in ((300, True, "2026-01"), (20, False, "2026-10")):
        consents.record_consent(
            tenant,
            subject="ana.silva@example.com",
            purpose="marketing-email",
            granted=granted,
            policy_version=version,
            source="preference centre",
            given_at=now - timedelta(days=days_ago),
        )
    ProcessingActivity.objects.create(
        tenant=tenant,
        name="Customer accounts and orders",
        purposes="Create and run customer accounts; take, ship and invoice orders.",
        legal_basis="contract",
        subject_categories="customers",
        data_categories="contact details, delivery addresses, order and payment history",
        recipients="payment processor; carriers",
        third_country_transfers="none",
        retention="account lifetime + 2 years; invoices 10 years (tax law)",
        security_measures="TLS, encryption at rest, SSO with MFA, quarterly access reviews",
        dpo_contact="dpo@example.com",
    )
    return PrivacyRequest.objects.for_tenant(tenant).count()
