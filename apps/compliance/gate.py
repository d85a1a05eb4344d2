"""The score and merge decision of a pull request, and the GitHub Checks API body that carries it.

score = max(0, 100 - w_block·B - w_override·O - w_warning·W) over open violations that no
approved, unexpired override covers. BLOCKED if an uncovered BLOCK violation is open; else FAIL
below the threshold; else OVERRIDE_APPROVED if an override was needed; else PASS. The check run's
conclusion is `failure` for BLOCKED and FAIL: never `neutral`, which satisfies a required check.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from apps.compliance.models import (
    MERGEABLE,
    ComplianceSettings,
    Decision,
    PullRequest,
    Tier,
    Violation,
    ViolationStatus,
)

CHECK_NAME = "opsportal / compliance"
MAX_ANNOTATIONS = 50  # GitHub accepts at most 50 annotations per request
MAX_BLOCKING_LISTED = 100
ANNOTATION_LEVEL = {Tier.BLOCK: "failure", Tier.OVERRIDE: "warning", Tier.WARNING: "notice"}
TIERS = (Tier.BLOCK, Tier.OVERRIDE, Tier.WARNING)


@dataclass
class GateState:
    score: int
    decision: str
    threshold: int
    open_counts: dict[str, int]  # uncovered open violations by tier
    overridden_counts: dict[str, int]  # open violations covered by an approved override
    by_rule: dict[str, dict[str, int]]  # rule id → {"open": n, "overridden": m, "tier"…}
    blocking: list[Violation] = field(default_factory=list)
    blocking_total: int = 0

    @property
    def can_merge(self) -> bool:
        return self.decision in MERGEABLE


def covered_by_override(now: datetime):
    """Subquery: an approved, unexpired override of the same pull request and fingerprint."""
    from apps.overrides.models import Override, OverrideState

    return Exists(
        Override.objects.filter(
            pull_request_id=OuterRef("pull_request_id"),
            fingerprint=OuterRef("fingerprint"),
            state=OverrideState.APPROVED,
            expires_at__gt=now,
        )
    )


def score_and_decision(
    open_counts: dict[str, int], overridden: int, config: ComplianceSettings
) -> tuple[int, str]:
    score = max(
        0,
        100
        - config.weight_block * open_counts.get(Tier.BLOCK, 0)
        - config.weight_override * open_counts.get(Tier.OVERRIDE, 0)
        - config.weight_warning * open_counts.get(Tier.WARNING, 0),
    )
    if open_counts.get(Tier.BLOCK, 0):
        return score, Decision.BLOCKED
    if score < config.pass_threshold:
        return score, Decision.FAIL
    return score, Decision.OVERRIDE_APPROVED if overridden else Decision.PASS


BRIEF_FIELDS = (
    "id",
    "pull_request_id",
    "rule_id",
    "severity",
    "fingerprint",
    "file_path",
    "line",
    "message",
)


def compute_gate(
    pull_request: PullRequest,
    config: ComplianceSettings,
    now: datetime | None = None,
    *,
    list_blocking: bool = True,
) -> GateState:
    """Two queries: open violations grouped by rule, tier and coverage; the blocking ones."""
    now = now or timezone.now()
    open_violations = Violation.objects.filter(
        pull_request=pull_request, status=ViolationStatus.OPEN, rule__enabled=True
    )
    grouped = (
        open_violations.annotate(covered=covered_by_override(now))
        .values("rule_id", "severity", "covered")
        .annotate(n=Count("id"))
        .order_by()
    )
    open_counts: dict[str, int] = dict.fromkeys(TIERS, 0)
    overridden_counts: dict[str, int] = dict.fromkeys(TIERS, 0)
    by_rule: dict[str, dict] = defaultdict(lambda: {"open": 0, "overridden": 0, "tier": ""})
    for row in grouped:
        bucket = overridden_counts if row["covered"] else open_counts
        bucket[row["severity"]] += row["n"]
        entry = by_rule[row["rule_id"]]
        entry["overridden" if row["covered"] else "open"] += row["n"]
        entry["tier"] = row["severity"]
    score, decision = score_and_decision(open_counts, sum(overridden_counts.values()), config)
    state = GateState(
        score=score,
        decision=decision,
        threshold=config.pass_threshold,
        open_counts=open_counts,
        overridden_counts=overridden_counts,
        by_rule=dict(sorted(by_rule.items())),
        blocking_total=open_counts[Tier.BLOCK],
    )
    if state.blocking_total and list_blocking:
        state.blocking = list(
            open_violations.filter(severity=Tier.BLOCK)
            .exclude(covered_by_override(now))
            .order_by("rule_id", "file_path", "id")[:MAX_BLOCKING_LISTED]
        )
    return state


def dashboard_url(pull_request: PullRequest) -> str:
    """The dashboard filtered to this pull request (absolute when PUBLIC_BASE_URL is set)."""
    query = urlencode(
        {"repository": pull_request.repository, "pr": pull_request.number, "status": "all"}
    )
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/admin/compliance/?{query}"


def violation_brief(violation: Violation) -> dict:
    return {
        "id": violation.pk,
        "rule_id": violation.rule_id,
        "severity": violation.severity,
        "fingerprint": violation.fingerprint,
        "file_path": violation.file_path,
        "line": violation.line,
        "message": violation.message,
    }


def _summary(state: GateState, pull_request: PullRequest) -> tuple[str, str]:
    blocking = state.open_counts[Tier.BLOCK]
    headline = {
        Decision.PASS: f"Passed with score {state.score}",
        Decision.OVERRIDE_APPROVED: f"Passed under an approved override, score {state.score}",
        Decision.FAIL: f"Score {state.score} is below the threshold of {state.threshold}",
        Decision.BLOCKED: f"Blocked by {blocking} violation{'s' if blocking != 1 else ''}",
    }[state.decision]
    lines = [
        f"**{state.decision}**: score {state.score}/100 (threshold {state.threshold}).",
        "",
        "| tier | open | overridden |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {tier} | {state.open_counts[tier]} | {state.overridden_counts[tier]} |"
        for tier in TIERS
    ]
    if state.decision == Decision.BLOCKED:
        lines += [
            "",
            "Fix the blocking violations, or request an override "
            "(`POST /api/v1/overrides`) and have a compliance admin approve it.",
        ]
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    if base:
        lines += ["", f"Details: {dashboard_url(pull_request)}"]
    return headline, "\n".join(lines)


def check_run_body(
    pull_request: PullRequest,
    state: GateState,
    annotated: list[Violation],
    head_sha: str | None = None,
) -> dict:
    """A GitHub Checks API body (POST /repos/{owner}/{repo}/check-runs), forwarded unchanged."""
    title, summary = _summary(state, pull_request)
    annotations = [
        {
            "path": v.file_path,
            "start_line": v.line or 1,
            "end_line": v.line or 1,
            "annotation_level": ANNOTATION_LEVEL[v.severity],
            "title": f"{v.rule_id} ({v.severity})",
            "message": (v.message or v.rule_id)[:64000],
        }
        for v in annotated
        if v.file_path
    ][:MAX_ANNOTATIONS]
    body = {
        "name": CHECK_NAME,
        "head_sha": head_sha or pull_request.head_sha,
        "status": "completed",
        "conclusion": "success" if state.can_merge else "failure",
        "external_id": f"{pull_request.repository}#{pull_request.number}",
        "output": {"title": title, "summary": summary, "annotations": annotations},
    }
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    if base:
        body["details_url"] = dashboard_url(pull_request)
    return body


def annotation_candidates(pull_request: PullRequest, now: datetime | None = None):
    """Open, uncovered violations with a file, most severe first (BLOCK < OVERRIDE < WARNING
    also sorts alphabetically): what the annotations show."""
    now = now or timezone.now()
    return list(
        Violation.objects.filter(
            pull_request=pull_request, status=ViolationStatus.OPEN, rule__enabled=True
        )
        .exclude(file_path="")
        .exclude(covered_by_override(now))
        .order_by("severity", "rule_id", "file_path", "line")[:MAX_ANNOTATIONS]
    )
