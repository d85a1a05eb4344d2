"""Canary releases: start, check every minute, decide, close.

Each open release gets one `CanaryCheck` per minute (beat catches up minutes it missed, up to an
hour, and checks the last four minutes again so late pushes count), built from the canary's and
the baseline's per-minute rows summed across routes; the verdict follows the rules of
apps/slo/canary.py over all checks so far. A verdict that changes raises an alert (a rollback
pages, tier 1; any other change informs, tier 2) and a rollback halts the flag
rollouts listening to `canary:<service>`.

A rollback is final for its release: later healthy minutes do not turn it back into a promote
(release tooling may already be acting on it). A release closes when a newer one of the same
service starts, when tooling closes it, or `SLO_RELEASE_MAX_MINUTES` after it started.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.slo import canary, quantiles
from apps.slo.alerting import evaluation_end
from apps.slo.models import CanaryCheck, MinuteSample, Release, Service, Verdict
from apps.tenancy import rls
from apps.tenancy.models import Tenant

MAX_CATCH_UP = 60
RECHECK = timedelta(minutes=4)
ALERT_SOURCE = "canary"


def policy_for(service: Service) -> canary.CanaryPolicy:
    return canary.CanaryPolicy.from_dict(service.canary_policy or {})


def start_release(
    tenant: Tenant,
    service: Service,
    *,
    version: str,
    baseline_version: str,
    canary_weight: Decimal,
    actor: str = "",
    now: datetime | None = None,
) -> Release:
    if version == baseline_version:
        raise ValidationError({"baseline_version": "Must differ from the canary's version."})
    now = now or timezone.now()
    with transaction.atomic():
        for previous in Release.objects.for_tenant(tenant).filter(service=service, closed_at=None):
            close_release(previous, f"superseded by {version}", now=now)
        release = Release(
            tenant=tenant,
            service=service,
            version=version,
            baseline_version=baseline_version,
            canary_weight=canary_weight,
            policy=policy_for(service).to_dict(),
            started_at=now,
            verdict=Verdict.CONTINUE,
            verdict_reasons=["Analysis starts with the next complete minute."],
            created_by=actor[:200],
        )
        release.full_clean(exclude=["tenant", "service"])
        release.save(audit_action="release.started")
    return release


def close_release(release: Release, reason: str, *, now: datetime | None = None) -> Release:
    if release.closed_at is not None:
        return release
    from apps.alerts.services import resolve_alert

    release.closed_at = now or timezone.now()
    release.close_reason = reason[:200]
    release.version_lock += 1
    release.save(audit_action="release.closed")
    for verdict in Verdict.values:  # tooling acted (or a newer release took over): stop paging
        resolve_alert(release.tenant_id, f"canary:{release.pk}:{verdict}")
    return release


def _minute_figures(rows: list[tuple]) -> canary.MinuteFigures | None:
    if not rows:
        return None
    requests = sum(r[0] for r in rows)
    errors = sum(r[1] for r in rows)
    buckets = quantiles.merge(r[2] for r in rows if r[2])
    p95 = quantiles.quantile(0.95, buckets) if buckets else None
    return canary.MinuteFigures(requests=requests, errors=errors, p95_ms=p95)


def evaluate_release(release: Release, end: datetime) -> canary.Verdict | None:
    """Check the minutes since the last check (up to `end`, exclusive) and decide."""
    policy = canary.CanaryPolicy.from_dict(release.policy)
    first = release.started_at.astimezone(UTC).replace(second=0, microsecond=0)
    if first != release.started_at:
        first += timedelta(minutes=1)  # only whole minutes after the start count
    last = release.checks.order_by("-minute").values_list("minute", flat=True).first()
    # The last few checked minutes are checked again, so data pushed late still counts.
    start = max(first, last - RECHECK if last else first)
    start = max(start, end - timedelta(minutes=MAX_CATCH_UP))
    new_checks = []
    if start < end:
        per_minute: dict[tuple[datetime, str], list] = defaultdict(list)
        rows = MinuteSample.objects.filter(
            service_id=release.service_id,
            minute__gte=start,
            minute__lt=end,
            version__in=[release.version, release.baseline_version],
        ).values_list("minute", "version", "requests", "errors", "buckets")
        for minute, version, requests, errors, buckets in rows:
            per_minute[(minute.astimezone(UTC), version)].append((requests, errors, buckets))
        minute = start
        while minute < end:
            check = canary.check_minute(
                minute,
                _minute_figures(per_minute.get((minute, release.version), [])),
                _minute_figures(per_minute.get((minute, release.baseline_version), [])),
                policy,
            )
            new_checks.append(check)
            minute += timedelta(minutes=1)
        CanaryCheck.objects.bulk_create(
            [
                CanaryCheck(
                    tenant_id=release.tenant_id,
                    release=release,
                    minute=c.minute,
                    passed=c.passed,
                    failures=list(c.failures),
                    canary=c.canary.to_dict() if c.canary else None,
                    baseline=c.baseline.to_dict() if c.baseline else None,
                )
                for c in new_checks
            ],
            update_conflicts=True,
            unique_fields=["release", "minute"],
            update_fields=["passed", "failures", "canary", "baseline"],
        )
    stored = list(release.checks.values("minute", "passed", "failures", "canary", "baseline"))
    if not stored:
        return None
    checks = [
        canary.Check.from_dict({**row, "minute": row["minute"].astimezone(UTC).isoformat()})
        for row in stored
    ]
    totals = {}
    for side in ("canary", "baseline"):
        figures = [row[side] for row in stored if row[side]]
        totals[side] = canary.Totals(
            requests=sum(f["requests"] for f in figures), errors=sum(f["errors"] for f in figures)
        )
    return canary.verdict(checks, totals["canary"], totals["baseline"], policy)


def apply_verdict(release: Release, result: canary.Verdict, now: datetime) -> bool:
    """Store the verdict; a change raises an alert (and a rollback halts rollouts)."""
    if release.verdict == Verdict.ROLLBACK and result.decision != Verdict.ROLLBACK:
        # Final (see the module docstring): keep the reasons that rolled it back.
        result = canary.Verdict(Verdict.ROLLBACK, tuple(release.verdict_reasons), result.figures)
    previous = release.verdict
    changed = result.decision != previous
    Release._base_manager.filter(pk=release.pk).update(
        verdict_reasons=list(result.reasons), verdict_figures=result.figures, verdict_at=now
    )
    if changed:
        release.verdict = result.decision
        release.verdict_reasons = list(result.reasons)
        release.verdict_figures = result.figures
        release.verdict_at = release.verdict_changed_at = now
        release.save(audit_action=f"release.verdict_{result.decision}")
        _announce(release, previous, result)
    return changed


def _announce(release: Release, previous: str, result: canary.Verdict) -> None:
    from apps.alerts.services import raise_alert, resolve_alert

    service = release.service
    resolve_alert(release.tenant, f"canary:{release.pk}:{previous}")
    headline = {
        Verdict.ROLLBACK: f"Roll back {service.name} {release.version}: the canary is failing",
        Verdict.PROMOTE: f"Promote {service.name} {release.version}: the canary is healthy",
        Verdict.CONTINUE: f"Keep analysing {service.name} {release.version}",
    }[result.decision]
    raise_alert(
        release.tenant,
        source=ALERT_SOURCE,
        tier=1 if result.decision == Verdict.ROLLBACK else 2,
        dedup_key=f"canary:{release.pk}:{result.decision}",
        title=headline,
        summary=f"Verdict {previous} -> {result.decision}. " + " ".join(result.reasons),
        details={"release": release.pk, "verdict": result.decision, **result.figures},
        links=[{"href": reverse("admin:slo_release_change", args=[release.pk]), "text": "Release"}],
    )
    if result.decision == Verdict.ROLLBACK:
        from apps.flags.rollouts import halt_for_signal

        halt_for_signal(release.tenant, release.signal, f"{release.version}: canary rollback")


def evaluate_open_releases(now: datetime | None = None) -> dict[str, int]:
    """Beat, every minute: check and decide every open release; close expired ones."""
    now = now or timezone.now()
    end = evaluation_end(now)
    counts = {"evaluated": 0, "changed": 0, "closed": 0}
    with rls.all_tenants_context():
        open_ids = list(Release.objects.filter(closed_at=None).values_list("pk", "tenant_id"))
    limit = timedelta(minutes=settings.SLO_RELEASE_MAX_MINUTES)
    for pk, tenant_id in open_ids:
        with rls.tenant_context(tenant_id), transaction.atomic():
            release = (
                Release.objects.select_for_update()
                .select_related("service", "tenant")
                .filter(pk=pk, closed_at=None)
                .first()
            )
            if release is None:
                continue
            result = evaluate_release(release, end)
            counts["evaluated"] += 1
            if result is not None and apply_verdict(release, result, now):
                counts["changed"] += 1
            if now - release.started_at >= limit:
                close_release(release, "analysis window over", now=now)
                counts["closed"] += 1
    return counts


def verdict_document(release: Release) -> dict:
    return {
        "id": release.pk,
        "service": release.service.name,
        "version": release.version,
        "baseline_version": release.baseline_version,
        "canary_weight": float(release.canary_weight),
        "started_at": release.started_at.isoformat(),
        "closed_at": release.closed_at.isoformat() if release.closed_at else None,
        "close_reason": release.close_reason,
        "verdict": release.verdict,
        "reasons": release.verdict_reasons,
        "figures": release.verdict_figures,
        "evaluated_at": release.verdict_at.isoformat() if release.verdict_at else None,
        "changed_at": (
            release.verdict_changed_at.isoformat() if release.verdict_changed_at else None
        ),
        "policy": release.policy,
    }
