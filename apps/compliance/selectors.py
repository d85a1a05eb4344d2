"""Reads of the compliance gate: rule statuses, violations with filters, trends, pull requests.

Every read is a fixed number of queries whatever the data size: counts come from the open
violations (indexed by tenant, status, rule), "last checked" from `RuleCheckState`, and series
from the daily `RuleTrend` table, never from a scan of the results table.
"""

from __future__ import annotations

import hashlib
import json
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, QuerySet, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.renderers import JSONRenderer

from apps.compliance import gate
from apps.compliance.models import (
    ComplianceSettings,
    PullRequest,
    Rule,
    RuleCheckState,
    RuleTrend,
    Tier,
    Violation,
    ViolationStatus,
)
from apps.tenancy.models import Tenant
from opsportal.dbrouter import read_replica

GREEN, YELLOW, RED, GREY = "green", "yellow", "red", "grey"


@dataclass
class RuleStatus:
    rule: Rule
    status: str
    open_counts: dict[str, int] = field(default_factory=dict)
    last_checked_at: datetime | None = None

    @property
    def open_total(self) -> int:
        return sum(self.open_counts.values())

    def as_dict(self) -> dict:
        return {
            "id": self.rule.id,
            "name": self.rule.name,
            "tier": self.rule.tier,
            "category": self.rule.category,
            "enabled": self.rule.enabled,
            "status": self.status,
            "last_checked_at": self.last_checked_at,
            "open": self.open_total,
            "open_by_severity": self.open_counts,
            "runbook": self.rule.runbook_path,
            "policy_file": self.rule.policy_file,
        }


def _status(open_counts: dict[str, int]) -> str:
    """red = any open BLOCK, yellow = only OVERRIDE/WARNING open, green = nothing open."""
    if open_counts.get(Tier.BLOCK):
        return RED
    if any(open_counts.values()):
        return YELLOW
    return GREEN


def rule_statuses(tenant: Tenant, rule_id: str | None = None) -> list[RuleStatus]:
    """Three queries: the rules, open counts by rule and severity, last-checked times."""
    rules = Rule.objects.all() if rule_id is None else Rule.objects.filter(pk=rule_id)
    open_violations = Violation.objects.for_tenant(tenant).filter(status=ViolationStatus.OPEN)
    if rule_id is not None:
        open_violations = open_violations.filter(rule_id=rule_id)
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in read_replica(
        open_violations.values("rule_id", "severity").annotate(n=Count("id")).order_by()
    ):
        counts[row["rule_id"]][row["severity"]] = row["n"]
    checked = dict(
        read_replica(RuleCheckState.objects.for_tenant(tenant)).values_list(
            "rule_id", "last_checked_at"
        )
    )
    return [
        RuleStatus(
            rule=rule,
            status=_status(counts.get(rule.id, {})) if rule.enabled else GREY,
            open_counts=counts.get(rule.id, {}),
            last_checked_at=checked.get(rule.id),
        )
        for rule in read_replica(rules)
    ]


def violations(tenant: Tenant, filters: dict | None = None) -> QuerySet[Violation]:
    """Violations with the dashboard's and the API's filters: rule, severity, file (substring),
    repository, pr, status (default: open)."""
    filters = filters or {}
    queryset = Violation.objects.for_tenant(tenant).select_related("pull_request")
    status = filters.get("status") or ViolationStatus.OPEN
    if status != "all":
        queryset = queryset.filter(status=status)
    if filters.get("rule"):
        queryset = queryset.filter(rule_id=filters["rule"])
    if filters.get("severity"):
        queryset = queryset.filter(severity=filters["severity"])
    if filters.get("file"):
        queryset = queryset.filter(file_path__icontains=filters["file"])
    if filters.get("repository"):
        queryset = queryset.filter(pull_request__repository=filters["repository"])
    if filters.get("pr"):
        queryset = queryset.filter(pull_request__number=filters["pr"])
    if filters.get("pull_request_id"):
        queryset = queryset.filter(pull_request_id=filters["pull_request_id"])
    return queryset


def pull_requests(tenant: Tenant, limit: int = 20) -> list[PullRequest]:
    return list(
        read_replica(PullRequest.objects.for_tenant(tenant))
        .filter(last_run_at__isnull=False)
        .order_by("-last_run_at")[:limit]
    )


def pull_request(tenant: Tenant, repository: str, number: int) -> PullRequest | None:
    return (
        PullRequest.objects.for_tenant(tenant).filter(repository=repository, number=number).first()
    )


def trend_series(tenant: Tenant, start: date, end: date, rule_id: str | None = None) -> list[dict]:
    """Daily series between two dates (inclusive); all rules summed unless one is named. The
    compliance rate of a sum is recomputed from the sums, never averaged."""
    rows = read_replica(RuleTrend.objects.for_tenant(tenant)).filter(day__gte=start, day__lte=end)
    if rule_id:
        rows = rows.filter(rule_id=rule_id)
    by_day = {
        row["day"]: row
        for row in rows.values("day")
        .annotate(evaluated=Sum("evaluated"), passing=Sum("passing"), violations=Sum("violations"))
        .order_by("day")
    }
    series = []
    day = start
    while day <= end:
        row = by_day.get(day)
        evaluated = row["evaluated"] if row else 0
        series.append(
            {
                "day": day.isoformat(),
                "evaluated": evaluated,
                "passing": row["passing"] if row else 0,
                "violations": row["violations"] if row else 0,
                "compliance_rate": round(row["passing"] / evaluated, 4) if evaluated else None,
            }
        )
        day += timedelta(days=1)
    return series


def top_files(tenant: Tenant, rule_id: str, limit: int = 10) -> list[tuple[str, int]]:
    return list(
        Violation.objects.for_tenant(tenant)
        .filter(rule_id=rule_id, status=ViolationStatus.OPEN)
        .exclude(file_path="")
        .values_list("file_path")
        .annotate(n=Count("id"))
        .order_by("-n", "file_path")[:limit]
    )


def today_for(tenant: Tenant) -> date:
    return timezone.now().astimezone(zoneinfo.ZoneInfo(tenant.time_zone)).date()


@dataclass
class GateAnswer:
    """A gate answer as cached: its ETag, the commit it is for, and the body rendered once.

    A poll serves `rendered` as it is; the body is parsed back only where it is needed (a poll
    for another commit), so a cache hit unpickles bytes, not a 23 KB dict.
    """

    etag: str
    head_sha: str
    rendered: bytes

    @cached_property
    def body(self) -> dict:
        return json.loads(self.rendered)


def _gate_key(pull_request_id: int, version: int, settings_version, catalog) -> str:
    if isinstance(catalog, str):  # SQLite returns the raw aggregate as text
        catalog = parse_datetime(catalog)
        if catalog is not None and timezone.is_naive(catalog):
            catalog = timezone.make_aware(catalog, UTC)
    stamp = catalog.timestamp() if catalog else 0
    return f"compliance:gate:v2:{pull_request_id}:{version}:{settings_version}:{stamp}"


def cached_gate(tenant: Tenant, repository: str, number: int) -> GateAnswer | bool | None:
    """The common case of a polling pipeline in one statement and one cache read: the pull
    request's id and version, the settings' version and the catalog's last change (the three
    parts of the cache key, see `gate_view`). None: no such pull request; False: not cached."""
    pull_request, settings_model = PullRequest._meta, ComplianceSettings._meta
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.id, p.version, (SELECT s.version FROM {settings_model.db_table} s "  # noqa: S608
            f"WHERE s.tenant_id = p.tenant_id), (SELECT max(r.updated_at) FROM "
            f"{Rule._meta.db_table} r) FROM {pull_request.db_table} p "
            "WHERE p.tenant_id = %s AND p.repository = %s AND p.number = %s",
            [tenant.pk, repository, number],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    pk, version, settings_version, catalog = row
    if settings_version is None:
        return False
    cached = cache.get(_gate_key(pk, version, settings_version, catalog))
    return GateAnswer(*cached) if cached else False


def gate_view(pull_request: PullRequest) -> GateAnswer:
    """The gate body and its ETag, cached per pull request version, settings version and the
    catalog's last change.

    Everything that changes a decision changes one of the three (a run, an override request,
    decision or expiry, a settings edit, a rule disabled), so a cached body is never stale,
    except for time itself: an approved override stops covering at its expiry, so the entry
    never outlives the earliest one, whether or not the expiry job has run yet.
    """
    from apps.compliance.services import settings_for

    config = settings_for(pull_request.tenant)
    catalog = Rule.objects.aggregate(changed=Max("updated_at"))["changed"]  # 25 rows
    key = _gate_key(pull_request.pk, pull_request.version, config.version, catalog)
    cached = cache.get(key)
    if cached is not None:
        return GateAnswer(*cached)
    body = gate_body(pull_request, config)
    etag = (
        '"'
        + hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]
        + '"'
    )
    answer = GateAnswer(etag, body["head_sha"], JSONRenderer().render(body))
    now = timezone.now()
    expiries = [
        o["expires_at"] for o in body["overrides"] if o["state"] == "APPROVED" and o["expires_at"]
    ]
    ttl = settings.COMPLIANCE_GATE_CACHE_SECONDS
    if expiries:
        ttl = min(ttl, (min(expiries) - now).total_seconds())
    if ttl >= 1:
        cache.set(key, (answer.etag, answer.head_sha, answer.rendered), timeout=int(ttl))
    return answer


def gate_body(pull_request: PullRequest, config) -> dict:
    from apps.overrides.models import LIVE_STATES, Override

    state = gate.compute_gate(pull_request, config, list_blocking=False)
    open_violations = list(
        Violation.objects.filter(
            pull_request=pull_request, status=ViolationStatus.OPEN, rule__enabled=True
        )
        .only(*gate.BRIEF_FIELDS)
        .order_by("severity", "rule_id", "file_path", "id")[:200]
    )
    overrides = list(
        Override.objects.filter(pull_request=pull_request, state__in=LIVE_STATES).values(
            "id", "rule_id", "fingerprint", "state", "expires_at", "requested_by_label"
        )
    )
    return {
        "repository": pull_request.repository,
        "pull_request": pull_request.number,
        "head_sha": pull_request.head_sha,
        "last_run_at": pull_request.last_run_at,
        "score": state.score,
        "threshold": state.threshold,
        "decision": state.decision,
        "can_merge": state.can_merge,
        "counts": {"open": state.open_counts, "overridden": state.overridden_counts},
        "breakdown": [{"rule_id": rule_id, **entry} for rule_id, entry in state.by_rule.items()],
        "open_violations": [gate.violation_brief(v) for v in open_violations],
        "open_violations_total": sum(state.open_counts.values())
        + sum(state.overridden_counts.values()),
        "overrides": overrides,
        "check_run": gate.check_run_body(
            pull_request, state, gate.annotation_candidates(pull_request)
        ),
    }
