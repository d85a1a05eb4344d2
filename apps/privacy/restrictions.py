"""What applications read before they process a subject, and lifting a restriction."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record_event
from apps.privacy import identity as ident
from apps.privacy.models import RestrictionKind, SubjectRestriction


def restrictions_of(tenant, subject: str) -> list[SubjectRestriction]:
    """Active restrictions of a subject given by email or external id."""
    key = ident.hash_key(tenant)
    keys = {ident.hmac_of(key, "email", subject), ident.hmac_of(key, "external_id", subject)}
    return list(
        SubjectRestriction.objects.for_tenant(tenant)
        .filter(subject_key__in=keys - {""}, lifted_at__isnull=True)
        .order_by("since", "pk")
    )


def lift_restriction(tenant, restriction_id: int, *, note: str) -> SubjectRestriction:
    """Art. 18(3): a restriction is lifted (the subject is told first). Erasure stops stay."""
    with transaction.atomic():
        found = (
            SubjectRestriction.objects.for_tenant(tenant)
            .select_for_update()
            .filter(pk=restriction_id, lifted_at__isnull=True)
            .first()
        )
        if found is None:
            raise SubjectRestriction.DoesNotExist
        if found.kind == RestrictionKind.ERASURE:
            raise ValidationError({"kind": "An erasure's stop cannot be lifted."})
        if not note.strip():
            raise ValidationError({"note": "Say why the restriction is lifted."})
        found.lifted_at = timezone.now()
        found.note = f"{found.note}; lifted: {note.strip()}".strip("; ")
        found.save(update_fields=["lifted_at", "note"])
        record_event(
            tenant_id=found.tenant_id,
            action="privacy_restriction.lifted",
            target=found,
            before={"lifted_at": None},
            after={"lifted_at": found.lifted_at, "purpose": found.purpose, "kind": found.kind},
        )
    return found
