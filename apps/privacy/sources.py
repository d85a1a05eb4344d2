"""The data map: where a subject's personal data lives, and how each field is treated.

Three kinds of source answer the same five questions (export, preview, erase, rectify, replay):
1. Django models of the portal and of any installed app, registered in code (`register`), one
   `ModelSource` per model: which fields identify the subject, and a `FieldSpec` per field;
2. tables of external PostgreSQL databases declared in the admin (apps/privacy/external.py);
3. webhook connectors to other systems (apps/privacy/connectors.py).

`sources_for(tenant)` lists them in the order an erasure runs them: sources marked `runs_last`
(the privacy requests themselves, which must keep the subject's identity until everything else is
done, so that a failed erasure can be retried) come at the end.

Category `secret` (password hashes, tokens, keys) is never exported; every other string is
scanned for secret-looking values before it leaves (apps/privacy/redaction.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.db import transaction
from django.db.models import Count, Q, QuerySet

from apps.privacy import identity as ident
from apps.privacy.identity import Identity
from apps.privacy.masking import SECRET, FieldSpec, deletes_row, masked, spec
from apps.privacy.models import Strategy

UPDATE_BATCH = 2000


class SourceError(Exception):
    """A source could not answer (unreachable database, connector error): named, retryable."""


@dataclass
class Preview:
    """What an erasure would do to one source: rows matched, and per field the strategy, how
    many values would change, or the legal hold that keeps them."""

    source: str
    kind: str
    rows: int = 0
    deletes_rows: bool = False
    fields: dict[str, dict] = field(default_factory=dict)
    error: str = ""

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "rows": self.rows,
            "deletes_rows": self.deletes_rows,
            "fields": self.fields,
            "error": self.error,
        }


@dataclass
class Outcome:
    """What an erasure or rectification did to one source (nothing personal in it)."""

    source: str
    status: str  # done | retained | failed | pending (a connector will call back)
    rows: int = 0
    deleted: bool = False
    strategies: dict[str, str] = field(default_factory=dict)
    retained: dict[str, str] = field(default_factory=dict)
    detail: str = ""

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "status": self.status,
            "rows": self.rows,
            "deleted": self.deleted,
            "strategies": self.strategies,
            "retained": self.retained,
            "detail": self.detail,
        }


class Source:
    """The interface every kind of source implements."""

    name: str
    kind: str
    runs_last = False
    replayable = True
    # Whether holding a subject's data here calls for consent (consent_completeness): not for
    # the portal's own bookkeeping (requests, consent records, staff accounts).
    needs_consent = True

    def field_specs(self) -> dict[str, FieldSpec]:
        raise NotImplementedError

    def exported_fields(self) -> list[str]:
        return [name for name, s in self.field_specs().items() if s.exported]

    def export(self, tenant, who: Identity, context) -> Iterator[dict]:
        raise NotImplementedError

    def preview(self, tenant, who: Identity, context) -> Preview:
        raise NotImplementedError

    def erase(self, tenant, who: Identity, context) -> Outcome:
        raise NotImplementedError

    def rectify(self, tenant, who: Identity, changes: dict, context) -> Outcome:
        raise NotImplementedError

    def replay(self, tenant, key_hashes: set[str], context) -> int:
        """Erase again the rows of subjects whose subject key is in `key_hashes`."""
        raise NotImplementedError

    def subjects(self, tenant) -> Iterator[str]:
        """Every subject (email or external id) this source holds data for."""
        return iter(())

    def rectifiable_fields(self) -> set[str]:
        """By default every field but secrets and legal holds."""
        return {
            name
            for name, s in self.field_specs().items()
            if s.category != SECRET and not s.legal_hold
        }

    def strategies(self) -> dict[str, str]:
        return {name: s.strategy for name, s in self.field_specs().items() if s.changes}

    def retained(self) -> dict[str, str]:
        return {name: s.legal_hold for name, s in self.field_specs().items() if s.legal_hold}


def check_changes(source: Source, changes: object) -> dict:
    """A rectification's changes for one source: fields the source lets be corrected (never a
    secret, a field on legal hold or the source's bookkeeping)."""
    if not isinstance(changes, dict) or not changes:
        raise ValueError(f"{source.name}: give the corrected fields as an object")
    specs = source.field_specs()
    unknown = [name for name in changes if name not in specs]
    if unknown:
        raise ValueError(f"{source.name}: no field {', '.join(sorted(unknown))}")
    allowed = source.rectifiable_fields()
    refused = sorted(name for name in changes if name not in allowed)
    if refused:
        raise ValueError(f"{source.name}: {', '.join(refused)} cannot be rectified")
    return changes


@dataclass
class ModelSource(Source):
    name: str
    model: str  # "app_label.ModelName"
    fields: dict[str, object]  # field -> category, or FieldSpec
    email_field: str = ""
    external_id_field: str = ""
    tenant_scoped: bool = True
    runs_last: bool = False
    # Extra rows of the subject beyond the identity fields (e.g. JSON bodies that echo them).
    match: Callable[[Identity], Q] | None = None
    needs_consent: bool = True
    emails_lowercased: bool = False
    # The fields a rectification may correct (portal bookkeeping is never among them).
    rectifiable: tuple[str, ...] = ()
    # Narrows a source that is not tenant-owned to the tenant's rows.
    scope: Callable[[QuerySet, object], QuerySet] | None = None
    kind: str = "model"

    def field_specs(self) -> dict[str, FieldSpec]:
        return {name: spec(value) for name, value in self.fields.items()}

    def _model(self):
        return apps.get_model(self.model)

    def rectifiable_fields(self) -> set[str]:
        return set(self.rectifiable) & super().rectifiable_fields()

    def queryset(self, tenant, who: Identity) -> QuerySet:
        model = self._model()
        matching = Q()
        if who.email and self.email_field:
            # Stored lower-cased already (consents, requests): an exact match, which the
            # tenant's index covers; otherwise case-insensitive.
            lookup = "" if self.emails_lowercased else "__iexact"
            matching |= Q(**{f"{self.email_field}{lookup}": who.email})
        if who.external_id and self.external_id_field:
            matching |= Q(**{self.external_id_field: who.external_id})
        if self.match is not None and who:
            matching |= self.match(who)
        if not matching:
            return model._default_manager.none()
        return self._scoped(model._default_manager.filter(matching), tenant).order_by("pk")

    def _scoped(self, queryset: QuerySet, tenant) -> QuerySet:
        if self.tenant_scoped:
            queryset = queryset.filter(tenant=tenant)
        if self.scope is not None:
            queryset = self.scope(queryset, tenant)
        return queryset

    def export(self, tenant, who: Identity, context) -> Iterator[dict]:
        return self.queryset(tenant, who).values(*self.exported_fields()).iterator(chunk_size=2000)

    def preview(self, tenant, who: Identity, context) -> Preview:
        specs = self.field_specs()
        queryset = self.queryset(tenant, who)
        changing = [name for name, s in specs.items() if s.changes]
        counts = queryset.aggregate(
            _rows=Count("pk"), **{f"f_{name}": Count(name) for name in changing}
        )
        preview = Preview(
            source=self.name, kind=self.kind, rows=counts["_rows"], deletes_rows=deletes_row(specs)
        )
        for name, s in specs.items():
            entry = {"category": s.category, "strategy": s.strategy}
            if s.legal_hold:
                entry.update(legal_hold=s.legal_hold, values=0)
            elif s.changes:
                entry["values"] = counts[f"f_{name}"]
            else:
                entry["values"] = 0
            preview.fields[name] = entry
        return preview

    def erase(self, tenant, who: Identity, context) -> Outcome:
        return self.erase_rows(self.queryset(tenant, who), context)

    def erase_rows(self, queryset: QuerySet, context) -> Outcome:
        """Erase these rows (matched however the caller chose) with the source's strategies."""
        specs = self.field_specs()
        outcome = Outcome(
            source=self.name, status="done", strategies=self.strategies(), retained=self.retained()
        )
        model = self._model()
        with transaction.atomic():
            if deletes_row(specs):
                outcome.rows = queryset.count()
                queryset.delete()
                outcome.deleted = True
                return outcome
            changing = {name: s for name, s in specs.items() if s.changes}
            if not changing:
                outcome.status = "retained" if outcome.retained else "done"
                outcome.rows = queryset.count()
                return outcome
            nullable = {name: model._meta.get_field(name).null for name in changing}
            batch = []
            for row in queryset.only("pk", *changing).iterator(chunk_size=UPDATE_BATCH):
                for name, s in changing.items():
                    value = getattr(row, name)
                    setattr(row, name, masked(s, value, key=context.key, nullable=nullable[name]))
                batch.append(row)
                if len(batch) >= UPDATE_BATCH:
                    model._base_manager.bulk_update(batch, list(changing))
                    outcome.rows += len(batch)
                    batch = []
            if batch:
                model._base_manager.bulk_update(batch, list(changing))
                outcome.rows += len(batch)
        return outcome

    def rectify(self, tenant, who: Identity, changes: dict, context) -> Outcome:
        changes = check_changes(self, changes)
        model = self._model()
        for name, value in changes.items():
            model._meta.get_field(name).clean(value, None)
        with transaction.atomic():
            rows = self.queryset(tenant, who).update(**changes)
        return Outcome(
            source=self.name, status="done", rows=rows, strategies=dict.fromkeys(changes, "set")
        )

    def subjects(self, tenant) -> Iterator[str]:
        queryset = self._scoped(self._model()._default_manager.all(), tenant)
        for column in {self.email_field, self.external_id_field} - {""}:
            values = queryset.exclude(**{column: ""}).values_list(column, flat=True).distinct()
            yield from values.iterator()

    def replay(self, tenant, key_hashes: set[str], context) -> int:
        """Scan the identity columns' distinct values, hash each, erase the matches."""
        queryset = self._scoped(self._model()._default_manager.all(), tenant)
        matches = Q()
        for kind, column in (("email", self.email_field), ("external_id", self.external_id_field)):
            if not column:
                continue
            values = queryset.exclude(**{column: ""}).values_list(column, flat=True).distinct()
            hits = [
                v for v in values.iterator() if ident.hmac_of(context.key, kind, v) in key_hashes
            ]
            if hits:
                matches |= Q(**{f"{column}__in": hits})
        if not matches:
            return 0
        return self.erase_rows(queryset.filter(matches).order_by("pk"), context).rows


class RequestsSource(ModelSource):
    """The subject's own privacy requests: erased last, with their access packages (files with
    every exported value, also ones a crashed build left behind) and whatever connectors
    answered for them."""

    def erase(self, tenant, who: Identity, context) -> Outcome:
        from apps.privacy.connectors import forget_subject
        from apps.privacy.package import package_files_of

        queryset = self.queryset(tenant, who)
        for path in package_files_of(list(queryset.values_list("pk", flat=True))):
            path.unlink(missing_ok=True)
        queryset.exclude(package_path="").update(package_path="", package_manifest={})
        forget_subject(queryset)
        return super().erase(tenant, who, context)


class AccountsSource(ModelSource):
    """Portal accounts: an account that is also a member of another tenant is not this
    tenant's to erase (it would lock a colleague out elsewhere); it is reported as retained."""

    def erase(self, tenant, who: Identity, context) -> Outcome:
        from apps.tenancy.models import Membership

        matched = self.queryset(tenant, who)
        elsewhere = Membership.objects.exclude(tenant=tenant).values("user_id")
        shared = matched.filter(pk__in=elsewhere)
        outcome = self.erase_rows(matched.exclude(pk__in=elsewhere), context)
        if shared.exists():
            outcome.retained = {
                **outcome.retained,
                "account": "also a member of another tenant: a superuser decides",
            }
            outcome.status = "retained" if not outcome.rows else outcome.status
        return outcome


SOURCES: dict[str, ModelSource] = {}


def register(source: ModelSource) -> ModelSource:
    from apps.privacy.masking import CATEGORIES

    unknown = {s.category for s in source.field_specs().values()} - set(CATEGORIES)
    if unknown:
        raise ValueError(f"{source.name}: unknown categories {sorted(unknown)}")
    SOURCES[source.name] = source
    return source


def sources_for(tenant) -> list[Source]:
    """Every source of the tenant, in erasure order (`runs_last` ones at the end)."""
    from apps.privacy.connectors import connector_sources
    from apps.privacy.external import external_sources

    found: list[Source] = [*SOURCES.values(), *external_sources(tenant), *connector_sources(tenant)]
    return sorted(found, key=lambda s: (s.runs_last, s.name))


def source_named(tenant, name: str) -> Source | None:
    return next((s for s in sources_for(tenant) if s.name == name), None)


def _echoes_identity(who: Identity) -> Q:
    found = Q()
    if who.email:
        found |= Q(response_body__subject__email__iexact=who.email)
        found |= Q(response_body__subject=who.email)
    if who.external_id:
        found |= Q(response_body__subject__external_id=who.external_id)
        found |= Q(response_body__subject=who.external_id)
    return found


def _members_only(queryset: QuerySet, tenant) -> QuerySet:
    """Portal accounts of the tenant's members; superusers are never erased by a tenant."""
    from apps.tenancy.models import Membership

    members = Membership.objects.for_tenant(tenant).values("user_id")
    return queryset.filter(pk__in=members, is_superuser=False)


LEGAL_HOLD_CONSENT = (
    "GDPR Art. 7(1): the controller must be able to demonstrate consent; the records are "
    "append-only"
)

register(
    AccountsSource(
        name="portal.user_accounts",
        model="auth.User",
        email_field="email",
        tenant_scoped=False,
        scope=_members_only,
        needs_consent=False,
        rectifiable=("first_name", "last_name", "email"),
        fields={
            "username": FieldSpec("identity", Strategy.KEYED_HASH),
            "first_name": FieldSpec("identity", Strategy.SET_NULL),
            "last_name": FieldSpec("identity", Strategy.SET_NULL),
            "email": FieldSpec("contact", Strategy.SET_NULL),
            "date_joined": FieldSpec("activity", Strategy.TRUNCATE_DATE),
            "last_login": FieldSpec("activity", Strategy.SET_NULL),
            # An unusable password ("!" prefix): the erased account can never log in.
            "password": FieldSpec(SECRET, Strategy.REPLACE, replacement="!erased"),
        },
    )
)
register(
    ModelSource(
        name="privacy.consents",
        model="privacy.ConsentRecord",
        email_field="subject",
        external_id_field="subject",
        needs_consent=False,
        emails_lowercased=True,
        fields={
            "subject": FieldSpec("contact", legal_hold=LEGAL_HOLD_CONSENT),
            "purpose": FieldSpec("preference", legal_hold=LEGAL_HOLD_CONSENT),
            "granted": FieldSpec("preference", legal_hold=LEGAL_HOLD_CONSENT),
            "policy_version": "preference",
            "source": "activity",
            "given_at": FieldSpec("activity", legal_hold=LEGAL_HOLD_CONSENT),
        },
    )
)
register(
    ModelSource(
        name="portal.api_replays",
        model="core.IdempotencyRecord",
        # Replayable first responses of the privacy API echo the subject's identity for 24 h.
        match=_echoes_identity,
        needs_consent=False,
        fields={
            "endpoint": "activity",
            "created_at": "activity",
            "response_body": FieldSpec("content", Strategy.DELETE_ROW),
        },
    )
)
register(
    RequestsSource(
        name="privacy.requests",
        model="privacy.PrivacyRequest",
        email_field="subject_email",
        external_id_field="subject_external_id",
        emails_lowercased=True,
        runs_last=True,
        needs_consent=False,
        fields={
            "id": "activity",
            "request_type": "activity",
            "subject_email": FieldSpec("contact", Strategy.SET_NULL),
            "subject_external_id": FieldSpec("identity", Strategy.SET_NULL),
            "channel": "activity",
            "notes": FieldSpec("content", Strategy.REPLACE, replacement="[erased]"),
            "last_note": FieldSpec("content", Strategy.REPLACE, replacement="[erased]"),
            "extension_reason": FieldSpec("content", Strategy.REPLACE, replacement="[erased]"),
            "corrections": FieldSpec("content", Strategy.SET_NULL),
            "status": "activity",
            "received_at": "activity",
        },
    )
)
