"""Retention: the one mechanism that deletes (or anonymises) what the portal may no longer keep.

Data categories are declared here, in code: which model, which age field, which rows (e.g. only
resolved violations), the default keep period and, where a category needs it, a handler of its
own (privacy packages are files: expiring one deletes the file, not the request). Each tenant
gets a `RetentionPolicy` per category, created with the defaults on first enforcement and
editable in the admin; a tenant may add policies for other tenant-owned models too.

Audit events and evidence artifacts are never a retention target: the trail is append-only and
hash-chained (deleting a link would break the proof of everything after it), the app role cannot
delete them at all, and they are the organisation's record of what it did, kept to meet its
accountability duty (GDPR Art. 5(2)). They hold no personal values of data subjects.

Enforcement (`enforce`) runs per tenant: beat at 03:00 tenant time, or `manage.py
enforce_retention [--dry-run]`. A run fixes every policy's cutoff when it starts, then deletes in
batches of at most RETENTION_BATCH_SIZE (5,000) rows, one transaction per batch, recording its
progress in the same transaction. The rows deleted with them count too (a resolved alert takes
its deliveries and their attempts): a model whose rows cascade starts with a tenth of the batch
size, and each next batch takes as many rows as the last one's dependents leave room for. A run
that crashed is resumed by the next one, with the same cutoffs. The finished report (rows per
policy, batches, the longest batch) is stored as evidence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connection, models, router, transaction
from django.db.models.deletion import Collector, get_candidate_relations_to_delete
from django.utils import timezone

from apps.audit.services import record_event, store_evidence
from apps.privacy.models import RetentionAction, RetentionPolicy, RetentionRun
from apps.privacy.retention_categories import CATEGORIES, retainable_models

logger = logging.getLogger(__name__)

NEVER_RETAINED = {"audit.auditevent", "audit.evidenceartifact", "audit.auditchain"}
RUN_HOUR = 3


class Interrupted(Exception):
    """Raised by a test hook to stand for a crash between batches."""


# --- policies -------------------------------------------------------------------------------


def ensure_default_policies(tenant) -> list[RetentionPolicy]:
    """Create the tenant's policy for every declared category it has none for yet."""
    existing = set(RetentionPolicy.objects.for_tenant(tenant).values_list("category", flat=True))
    created = []
    for category in CATEGORIES.values():
        if category.key in existing:
            continue
        policy = RetentionPolicy(
            tenant_id=getattr(tenant, "pk", tenant),
            category=category.key,
            description=category.description,
            model=category.model,
            age_field=category.age_field,
            keep=category.keep(),
        )
        policy.save(audit_action="retention_policy.created")
        created.append(policy)
    return created


def clean_policy(policy: RetentionPolicy) -> None:
    """ValidationError naming each problem (422 in the API, form errors in the admin)."""
    errors: dict[str, str] = {}
    category = CATEGORIES.get(policy.category)
    try:
        model = apps.get_model(policy.model)
    except (LookupError, ValueError):
        raise ValidationError(
            {"model": f"No model {policy.model!r} (write app_label.Model)."}
        ) from None
    label = model._meta.label_lower
    if label in NEVER_RETAINED:
        errors["model"] = (
            "Audit events and evidence are never deleted by retention: the trail is append-only "
            "and hash-chained."
        )
    elif label not in retainable_models():
        errors["model"] = (
            f"{policy.model} is not a retention target: records of what the portal did "
            "(privacy requests, erasure records, restrictions, consent records, tenancy) are "
            f"kept. Targets: {', '.join(sorted(retainable_models()))}."
        )
    if category is not None:
        if policy.model != category.model or policy.age_field != category.age_field:
            errors["model"] = (
                f"Category {category.key} is {category.model}.{category.age_field}; add a new "
                "category for another model."
            )
        if category.minimum and policy.keep < category.minimum():
            errors["keep"] = f"{category.key} must be kept at least {category.minimum()}."
        if category.expire and policy.action != RetentionAction.DELETE:
            errors["action"] = f"{category.key} can only be deleted."
    try:
        field = model._meta.get_field(policy.age_field)
        if not isinstance(field, models.DateField):  # DateTimeField is a DateField
            errors["age_field"] = f"{policy.age_field} is not a date or time field."
    except FieldDoesNotExist:
        errors["age_field"] = f"{policy.model} has no field {policy.age_field}."
    if policy.keep is None or policy.keep <= timedelta(0):
        errors["keep"] = "Keep for a positive duration."
    if policy.action == RetentionAction.ANONYMISE and _source_for(policy.model) is None:
        errors["action"] = (
            f"Anonymising needs {policy.model} in the data map (its masking strategies); "
            "register a ModelSource or delete instead."
        )
    if errors:
        raise ValidationError(errors)


def save_policy(policy: RetentionPolicy) -> RetentionPolicy:
    clean_policy(policy)
    with transaction.atomic():
        if policy.pk:
            policy.version = models.F("version") + 1
        policy.save(audit_action="retention_policy.saved")
        policy.refresh_from_db(fields=["version"])
    return policy


def _source_for(model_label: str):
    from apps.privacy.sources import SOURCES

    label = model_label.lower()
    return next((s for s in SOURCES.values() if s.model.lower() == label), None)


# --- enforcement ----------------------------------------------------------------------------


def expired(policy: RetentionPolicy, cutoff: datetime, tenant=None) -> models.QuerySet:
    """The policy's rows older than the cutoff. A date field is compared with the cutoff's date
    in the tenant's time zone (a day there, not in UTC)."""
    model = apps.get_model(policy.model)
    field = model._meta.get_field(policy.age_field)
    bound: date | datetime = cutoff
    if not isinstance(field, models.DateTimeField):
        zone = ZoneInfo(tenant.time_zone) if tenant is not None else UTC
        bound = cutoff.astimezone(zone).date()
    queryset = model._base_manager.filter(
        tenant_id=policy.tenant_id, **{f"{policy.age_field}__lt": bound}
    )
    category = CATEGORIES.get(policy.category)
    if category and category.scope:
        queryset = queryset.filter(category.scope())
    return queryset.order_by("pk")


def _delete(model, ids: list) -> tuple[int, int]:
    """Delete rows and what depends on them (CASCADE, SET_NULL ...) as Django would, without
    per-row audit events: the run's report is the record. Returns the model's rows deleted and
    the rows deleted in all."""
    queryset = model._base_manager.filter(pk__in=ids)
    collector = Collector(using=router.db_for_write(model))
    collector.collect(queryset)
    total, per_model = collector.delete()
    return per_model.get(model._meta.label, 0), total


def _cascades(policy: RetentionPolicy) -> bool:
    """Whether deleting the policy's rows deletes rows of other models with them."""
    category = CATEGORIES.get(policy.category)
    if (category and category.expire) or policy.action != RetentionAction.DELETE:
        return False
    related = get_candidate_relations_to_delete(apps.get_model(policy.model)._meta)
    return any(relation.on_delete is models.CASCADE for relation in related)


def _anonymise(policy: RetentionPolicy, ids: list) -> int:
    from apps.privacy import identity
    from apps.privacy.rights import Context

    source = _source_for(policy.model)
    model = apps.get_model(policy.model)
    context = Context(key=identity.hash_key(policy.tenant_id))
    return source.erase_rows(model._base_manager.filter(pk__in=ids).order_by("pk"), context).rows


def _apply(policy: RetentionPolicy, ids: list) -> tuple[int, int]:
    """The policy's rows expired, and the rows deleted in all (with what cascaded)."""
    category = CATEGORIES.get(policy.category)
    model = apps.get_model(policy.model)
    if category and category.expire:
        rows = category.expire(model._base_manager.filter(pk__in=ids))
        return rows, rows
    if policy.action == RetentionAction.ANONYMISE:
        rows = _anonymise(policy, ids)
        return rows, rows
    return _delete(model, ids)


def local_today(tenant, now: datetime) -> date:
    return now.astimezone(ZoneInfo(tenant.time_zone)).date()


@contextmanager
def _tenant_lock(tenant) -> Iterator[bool]:
    """One run per tenant at a time (the beat job and `enforce_retention` never overlap): a
    session advisory lock on PostgreSQL, released when the run ends or its connection dies."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = (LOCK_NAMESPACE << 32) | getattr(tenant, "pk", tenant)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


LOCK_NAMESPACE = 0x5245  # "RE": apart from the other advisory locks


class RunInProgress(Exception):
    """Another retention run of this tenant holds the lock."""


def _policies_for(tenant, *, dry_run: bool) -> list[RetentionPolicy]:
    """The tenant's enabled policies; a dry run uses the defaults without saving them."""
    if not dry_run:
        ensure_default_policies(tenant)
        return list(RetentionPolicy.objects.for_tenant(tenant).filter(enabled=True))
    stored = {p.category: p for p in RetentionPolicy.objects.for_tenant(tenant)}
    for category in CATEGORIES.values():
        stored.setdefault(
            category.key,
            RetentionPolicy(
                tenant_id=getattr(tenant, "pk", tenant),
                category=category.key,
                model=category.model,
                age_field=category.age_field,
                keep=category.keep(),
            ),
        )
    return [p for p in stored.values() if p.enabled]


def enforce(
    tenant,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_size: int | None = None,
    after_batch: Callable[[str, int], None] | None = None,
) -> RetentionRun:
    """Enforce the tenant's policies; resume its unfinished run if there is one. A dry run only
    counts: it changes nothing and its run is not stored. A policy that fails is reported in
    the run (status failed) and the others still run; a crash mid-run leaves it running, for
    the next call to resume."""
    now = now or timezone.now()
    batch_size = min(batch_size or settings.RETENTION_BATCH_SIZE, 5000)
    with _tenant_lock(tenant) as mine:
        if not mine:
            raise RunInProgress(f"a retention run of tenant {tenant} is in progress")
        policies = _policies_for(tenant, dry_run=dry_run)
        run = None
        if not dry_run:
            run = (
                RetentionRun.objects.for_tenant(tenant)
                .filter(status=RetentionRun.RUNNING, dry_run=False)
                .first()
            )
        if run is None:
            run = RetentionRun(
                tenant=tenant,
                local_date=local_today(tenant, now),
                dry_run=dry_run,
                cutoffs={p.category: (now - p.keep).isoformat() for p in policies},
                report={"policies": {}, "resumed": 0},
            )
            if not dry_run:
                run.save()
        else:
            run.report["resumed"] = run.report.get("resumed", 0) + 1
            RetentionRun.objects.filter(pk=run.pk).update(report=run.report)
        for policy in policies:
            if policy.category not in run.cutoffs:
                continue  # added after this run started: the next run takes it
            entry = run.report["policies"].setdefault(
                policy.category,
                {
                    "model": policy.model,
                    "action": policy.action,
                    "rows": 0,
                    "batches": 0,
                    "longest_batch_seconds": 0.0,
                    "done": False,
                },
            )
            if entry["done"]:
                continue
            entry["cutoff"] = run.cutoffs[policy.category]
            cutoff = datetime.fromisoformat(run.cutoffs[policy.category])
            queryset = expired(policy, cutoff, tenant=tenant)
            if dry_run:
                entry["rows"] = queryset.count()
                entry["done"] = True
                continue
            try:
                _enforce_policy(policy, queryset, entry, run, batch_size, after_batch)
            except Interrupted:
                raise
            except Exception as exc:
                logger.exception("retention policy %s failed", policy.category)
                entry["error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            entry["done"] = True
            RetentionRun.objects.filter(pk=run.pk).update(report=run.report)
        return _finish(run)


def _enforce_policy(policy, queryset, entry: dict, run, batch_size: int, after_batch) -> None:
    size = max(1, batch_size // 10) if _cascades(policy) else batch_size
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:size])
        if not ids:
            return
        began = time.monotonic()
        with transaction.atomic():
            rows, deleted = _apply(policy, ids)
            entry["rows"] += rows
            entry["rows_with_dependents"] = entry.get("rows_with_dependents", 0) + deleted
            entry["batches"] += 1
            RetentionRun.objects.filter(pk=run.pk).update(report=run.report)
        # Timed after COMMIT, where deferred foreign-key checks run: the lock time in full.
        seconds = round(time.monotonic() - began, 4)
        entry["longest_batch_seconds"] = max(entry["longest_batch_seconds"], seconds)
        # As many rows next time as keep the batch within batch_size rows in all.
        size = max(1, min(batch_size, len(ids) * batch_size // max(deleted, 1)))
        if after_batch:
            after_batch(policy.category, entry["batches"])


def _finish(run: RetentionRun) -> RetentionRun:
    rows = {k: v["rows"] for k, v in run.report["policies"].items()}
    failed = sorted(k for k, v in run.report["policies"].items() if v.get("error"))
    run.status = RetentionRun.FAILED if failed else RetentionRun.COMPLETED
    run.finished_at = timezone.now()
    if run.dry_run:
        return run
    with transaction.atomic():
        run.evidence = store_evidence(
            tenant_id=run.tenant_id,
            kind="retention_run",
            content={"run": run.pk, "local_date": run.local_date.isoformat(), **run.report},
            period=run.local_date.isoformat(),
        )
        record_event(
            tenant_id=run.tenant_id,
            action="retention.enforced",
            target=run,
            after={"rows": rows, "failed": failed, "resumed": run.report.get("resumed", 0)},
        )
        run.save(update_fields=["status", "finished_at", "evidence", "report"])
    return run


def enforce_due(now: datetime | None = None) -> dict[str, int]:
    """Beat (hourly): resume any unfinished run; start one per tenant from 03:00 its time,
    once per local day."""
    from apps.privacy.package import sweep_orphans
    from apps.tenancy.models import Tenant
    from apps.tenancy.rls import all_tenants_context, tenant_context

    now = now or timezone.now()
    done: dict[str, int] = {}
    with all_tenants_context():
        tenants = list(Tenant.objects.all())
        done["orphan package files"] = sweep_orphans()
    for tenant in tenants:
        with tenant_context(tenant):
            unfinished = RetentionRun.objects.for_tenant(tenant).filter(
                status=RetentionRun.RUNNING, dry_run=False
            )
            local = now.astimezone(ZoneInfo(tenant.time_zone))
            ran_today = RetentionRun.objects.for_tenant(tenant).filter(
                local_date=local.date(), dry_run=False
            )
            if not unfinished.exists() and (local.hour < RUN_HOUR or ran_today.exists()):
                continue
            try:
                run = enforce(tenant, now=now)
            except RunInProgress:
                continue
            except Exception:
                logger.exception("retention run failed", extra={"tenant": tenant.slug})
                continue
            done[tenant.slug] = sum(v["rows"] for v in run.report["policies"].values())
    return done
