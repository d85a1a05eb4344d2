"""Writes of the compliance gate: recording a CI run, recomputing a pull request's decision,
gate settings and mappings, the rule catalog, trends and retention.

`record_run` is the hot path. Parsing, mapping and fingerprinting happen before the transaction;
inside it the pull request row is locked (runs of one pull request are serialised, runs of
different ones are not), results and violations are written with one set-based statement each
(`apps.compliance.bulk`), the decision is recomputed, and the alerts are left in the outbox.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import record_event
from apps.compliance import bulk, gate
from apps.compliance.ingest import PASS, VIOLATION, ParsedRun
from apps.compliance.ingest.fingerprint import fingerprint
from apps.compliance.ingest.mapping import RuleMapper
from apps.compliance.models import (
    CheckRun,
    ComplianceSettings,
    PullRequest,
    Rule,
    RuleCheckState,
    SourceFormat,
    ToolRuleMapping,
    UnmappedResults,
    Violation,
    ViolationStatus,
)
from apps.compliance.rule_catalog import DEFAULT_CATALOG, LoadReport, load_catalog, read_catalog
from apps.core.services import enqueue
from apps.tenancy.models import Tenant
from apps.tenancy.rls import tenant_context

logger = logging.getLogger(__name__)

MAX_LISTED_PROBLEMS = 100


class RunRejected(Exception):
    """A semantic problem with a run (unknown rules, unmapped results): 422, nothing stored."""

    def __init__(self, detail: str, errors: dict):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


@dataclass
class RunIdentity:
    repository: str
    pull_request: int
    commit_sha: str
    tool: str
    source_format: str
    source_root: str = ""  # a checkout directory to strip from absolute paths


def repository_relative(path: str, identity: RunIdentity) -> str:
    """Tools such as ruff write absolute `file://` paths. GitHub annotations need paths relative
    to the repository, and a fingerprint must not change with the runner's directory, so an
    absolute path loses the given source root, or else the GitHub Actions checkout prefix
    (`…/<name>/<name>/`)."""
    if not path.startswith("/"):
        return path
    root = identity.source_root.rstrip("/")
    if root and path.startswith(root + "/"):
        return path[len(root) + 1 :]
    name = identity.repository.rsplit("/", 1)[-1]
    marker = f"/{name}/{name}/"
    index = path.find(marker)
    return path[index + len(marker) :] if index >= 0 else path


@dataclass
class PreparedRun:
    """A parsed run with every result mapped to a catalog rule, ready to be written."""

    results: list[tuple] = field(default_factory=list)  # bulk.RESULT_COLUMNS order
    violations: dict[str, list] = field(default_factory=dict)  # fingerprint → row + count
    passed: int = 0
    violated: int = 0
    suppressed: int = 0
    ignored: int = 0  # results of disabled rules, and passes no mapping claims
    rules_checked: set[str] = field(default_factory=set)


@dataclass
class RunOutcome:
    run: CheckRun
    created: bool


def settings_for(tenant: Tenant) -> ComplianceSettings:
    config = ComplianceSettings.objects.for_tenant(tenant).select_related("catch_all_rule").first()
    if config is None:
        try:
            with transaction.atomic():
                config = ComplianceSettings(tenant=tenant)
                config.save(audit_action="compliance_settings.created")
        except IntegrityError:
            config = ComplianceSettings.objects.for_tenant(tenant).get()
    return config


def _mapper(tenant: Tenant) -> RuleMapper:
    entries = ToolRuleMapping.objects.for_tenant(tenant).values_list("tool", "pattern", "rule_id")
    return RuleMapper(list(entries))


def prepare_run(
    tenant: Tenant, identity: RunIdentity, parsed: ParsedRun, config: ComplianceSettings
) -> PreparedRun:
    """Map every finding to a catalog rule and fingerprint the violations; reject the run
    (RunRejected) if a rule is unknown or, per the tenant's setting, a result is unmapped."""
    rules = {rule.id: rule for rule in Rule.objects.all()}
    mapper = _mapper(tenant) if identity.source_format != SourceFormat.NATIVE else None
    catch_all = (
        config.catch_all_rule if config.unmapped_results == UnmappedResults.CATCH_ALL else None
    )
    unknown: Counter[str] = Counter()
    unmapped: Counter[str] = Counter()
    prepared = PreparedRun()
    results, violations = prepared.results, prepared.violations
    tool = identity.tool
    for finding in parsed.findings:
        rule_id = finding.rule_id
        if rule_id is None and mapper is not None:
            rule_id = mapper.resolve(finding.context.get("tool", tool), finding.tool_rule)
        if rule_id is None:
            if finding.status == PASS:
                prepared.ignored += 1  # a pass no rule claims is not evidence of anything
                continue
            if catch_all is None:
                unmapped[finding.tool_rule or "(no rule id)"] += 1
                continue
            rule_id = catch_all.id
        rule = rules.get(rule_id)
        if rule is None:
            unknown[rule_id] += 1
            continue
        if not rule.enabled:
            prepared.ignored += 1
            continue
        prepared.rules_checked.add(rule_id)
        if finding.file_path.startswith("/"):
            finding.file_path = repository_relative(finding.file_path, identity)
        if "\x00" in finding.message or "\x00" in finding.file_path:
            finding.message = finding.message.replace("\x00", "\ufffd")
            finding.file_path = finding.file_path.replace("\x00", "\ufffd")
        fp = ""
        if finding.status == VIOLATION:
            fp = fingerprint(rule_id, finding.file_path, finding.message)
            if finding.suppressed:
                prepared.suppressed += 1
            else:
                prepared.violated += 1
            known = violations.get(fp)
            if known is None:
                violations[fp] = [rule_id, rule.tier, finding, 1, finding.suppressed]
            else:
                known[3] += 1
                known[4] = known[4] and finding.suppressed
        else:
            prepared.passed += 1
        results.append(
            (
                rule_id,
                finding.status,
                rule.tier,
                finding.suppressed,
                finding.file_path,
                finding.line,
                finding.message,
                fp,
                finding.tool_rule,
                finding.context,
            )
        )
    if unknown or unmapped:
        errors: dict[str, list[str]] = {}
        if unknown:
            errors["unknown_rules"] = [
                f"{rule_id} ({count} result{'s' if count != 1 else ''})"
                for rule_id, count in unknown.most_common(MAX_LISTED_PROBLEMS)
            ]
        if unmapped:
            errors["unmapped"] = [
                f"{tool}:{tool_rule} ({count} result{'s' if count != 1 else ''})"
                for tool_rule, count in unmapped.most_common(MAX_LISTED_PROBLEMS)
            ]
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} rule id(s) are not in the catalog")
        if unmapped:
            parts.append(
                f"{sum(unmapped.values())} result(s) of {len(unmapped)} tool rule(s) map to no"
                " catalog rule; add tool rule mappings or choose a catch-all rule"
            )
        raise RunRejected("; ".join(parts) + ".", errors)
    return prepared


def _locked_pull_request(tenant: Tenant, repository: str, number: int) -> PullRequest:
    """The pull request row, created if new, locked for the rest of the transaction."""
    queryset = PullRequest.objects.for_tenant(tenant).select_for_update()
    pull_request = queryset.filter(repository=repository, number=number).first()
    if pull_request is None:
        try:
            with transaction.atomic():
                PullRequest.objects.create(tenant=tenant, repository=repository, number=number)
        except IntegrityError:
            pass  # a concurrent first run created it; lock theirs
        pull_request = queryset.get(repository=repository, number=number)
    return pull_request


def record_run(
    tenant: Tenant, identity: RunIdentity, parsed: ParsedRun, *, now: datetime | None = None
) -> RunOutcome:
    """Store a run atomically and recompute the pull request's decision.

    The same (repository, pull request, commit, tool) posted again returns the first run.
    """
    now = now or timezone.now()
    config = settings_for(tenant)
    existing = _existing_run(tenant, identity)
    if existing is not None:
        return RunOutcome(existing, created=False)
    prepared = prepare_run(tenant, identity, parsed, config)
    with transaction.atomic():
        pull_request = _locked_pull_request(tenant, identity.repository, identity.pull_request)
        existing = _existing_run(tenant, identity, pull_request)
        if existing is not None:  # the same run won a race while we were parsing
            return RunOutcome(existing, created=False)
        run = CheckRun.objects.create(
            tenant=tenant,
            pull_request=pull_request,
            commit_sha=identity.commit_sha,
            tool=identity.tool,
            source_format=identity.source_format,
            received_at=now,
            result_count=len(prepared.results),
            passed_count=prepared.passed,
            violation_count=prepared.violated,
            suppressed_count=prepared.suppressed,
            score=0,
            decision="PASS",
        )
        bulk.insert_results(
            tenant_id=tenant.pk, run_id=run.pk, created_at=now, rows=prepared.results
        )
        opened, resolved = _update_violations(pull_request, run, prepared, now)
        state = refresh_pull_request(
            pull_request, config, now=now, head_sha=identity.commit_sha, ran_at=now
        )
        run.score, run.decision = state.score, state.decision
        run.new_violation_count, run.resolved_violation_count = sum(opened.values()), resolved
        run.response = run_response(run, pull_request, state, prepared, now)
        run.save(
            update_fields=[
                "score",
                "decision",
                "new_violation_count",
                "resolved_violation_count",
                "response",
            ]
        )
        # After commit: these rows are shared by every run of the tenant, so updating them
        # inside this transaction would serialise concurrent runs until it commits. "Last
        # checked" is advisory, and it never moves backwards.
        rules_checked = prepared.rules_checked
        transaction.on_commit(lambda: _mark_rules_checked(tenant, rules_checked, now))
        record_event(
            tenant_id=tenant.pk,
            action="compliance.run_recorded",
            target=run,
            after={
                "pull_request": str(pull_request),
                "commit_sha": run.commit_sha,
                "tool": run.tool,
                "results": run.result_count,
                "new_violations": run.new_violation_count,
                "resolved_violations": resolved,
                "score": state.score,
                "decision": state.decision,
            },
        )
        if opened or resolved:
            enqueue("compliance.notify_run", run_id=run.pk, opened=dict(opened))
    return RunOutcome(run, created=True)


def _existing_run(
    tenant: Tenant, identity: RunIdentity, pull_request: PullRequest | None = None
) -> CheckRun | None:
    runs = CheckRun.objects.for_tenant(tenant).filter(
        commit_sha=identity.commit_sha, tool=identity.tool
    )
    if pull_request is not None:
        return runs.filter(pull_request=pull_request).first()
    return runs.filter(
        pull_request__repository=identity.repository,
        pull_request__number=identity.pull_request,
    ).first()


def _update_violations(
    pull_request: PullRequest, run: CheckRun, prepared: PreparedRun, now: datetime
) -> tuple[Counter[str], int]:
    """Open new violations, refresh (and reopen) seen ones, resolve the ones this tool no
    longer reports. Returns newly opened counts per rule and the number resolved."""
    known = {
        fp: (pk, status)
        for fp, pk, status in Violation.objects.filter(
            pull_request=pull_request, tool=run.tool
        ).values_list("fingerprint", "id", "status")
    }
    new_rows, seen_rows = [], []
    opened: Counter[str] = Counter()
    for fp, (rule_id, tier, finding, count, suppressed) in prepared.violations.items():
        status = ViolationStatus.SUPPRESSED if suppressed else ViolationStatus.OPEN
        previous = known.get(fp)
        if previous is None:
            new_rows.append(
                (
                    rule_id,
                    run.tool,
                    fp,
                    tier,
                    status,
                    finding.file_path,
                    finding.line,
                    finding.message,
                    count,
                )
            )
        else:
            seen_rows.append((previous[0], tier, status, finding.line, finding.message, count))
        if status == ViolationStatus.OPEN and (
            previous is None or previous[1] != ViolationStatus.OPEN
        ):
            opened[rule_id] += 1
    bulk.insert_violations(
        tenant_id=run.tenant_id,
        pull_request_id=pull_request.pk,
        run_id=run.pk,
        seen_at=now,
        rows=new_rows,
    )
    bulk.update_seen_violations(run_id=run.pk, seen_at=now, rows=seen_rows)
    resolved = (
        Violation.objects.filter(
            pull_request=pull_request,
            tool=run.tool,
            status__in=[ViolationStatus.OPEN, ViolationStatus.SUPPRESSED],
        )
        .exclude(last_seen_run=run)
        .update(status=ViolationStatus.RESOLVED, resolved_at=now, resolved_by_commit=run.commit_sha)
    )
    return opened, resolved


def refresh_pull_request(
    pull_request: PullRequest,
    config: ComplianceSettings | None = None,
    *,
    now: datetime | None = None,
    head_sha: str | None = None,
    ran_at: datetime | None = None,
) -> gate.GateState:
    """Recompute and store a pull request's score and decision. Call inside the transaction of
    whatever changed them (a run, an override decision, an expiry)."""
    config = config or settings_for(pull_request.tenant)
    state = gate.compute_gate(pull_request, config, now)
    pull_request.score, pull_request.decision = state.score, state.decision
    fields = ["score", "decision", "version"]
    if head_sha is not None:
        pull_request.head_sha = head_sha
        fields.append("head_sha")
    if ran_at is not None:
        pull_request.last_run_at = ran_at
        fields.append("last_run_at")
    pull_request.version += 1
    pull_request.save(update_fields=fields)
    warm_gate_after_commit(pull_request.pk)
    return state


def warm_gate_after_commit(pull_request_id: int) -> None:
    """Cache the gate answer of the pull request's new version once the change commits, so the
    pipeline's next poll is served from the cache instead of computing it (write-through). A
    failure only costs that first poll its cache hit: it is logged, never raised."""
    transaction.on_commit(lambda: warm_gate(pull_request_id), robust=True)


def warm_gate(pull_request_id: int) -> None:
    from apps.compliance import selectors

    pull_request = PullRequest.objects.select_related("tenant").filter(pk=pull_request_id).first()
    if pull_request is not None and pull_request.last_run_at is not None:
        selectors.gate_view(pull_request)


def run_response(
    run: CheckRun,
    pull_request: PullRequest,
    state: gate.GateState,
    prepared: PreparedRun,
    now: datetime,
) -> dict:
    return {
        "id": run.pk,
        "repository": pull_request.repository,
        "pull_request": pull_request.number,
        "commit_sha": run.commit_sha,
        "tool": run.tool,
        "format": run.source_format,
        "received_at": now.isoformat(),
        "score": state.score,
        "threshold": state.threshold,
        "decision": state.decision,
        "can_merge": state.can_merge,
        "counts": {
            "open": state.open_counts,
            "overridden": state.overridden_counts,
        },
        "results": {
            "total": len(prepared.results),
            "passed": prepared.passed,
            "violations": prepared.violated,
            "suppressed": prepared.suppressed,
            "ignored": prepared.ignored,
        },
        "new_violations": run.new_violation_count,
        "resolved_violations": run.resolved_violation_count,
        "blocking_violations": [gate.violation_brief(v) for v in state.blocking],
        "blocking_total": state.blocking_total,
        "check_run": gate.check_run_body(
            pull_request, state, gate.annotation_candidates(pull_request, now), run.commit_sha
        ),
    }


def _mark_rules_checked(tenant: Tenant, rule_ids: set[str], now: datetime) -> None:
    """Two statements whatever the number of rules; never moves a time backwards (runs may be
    recorded out of order, e.g. a backfill). Runs after commit, so it sets its own scope
    rather than rely on whatever scope the caller's caller left."""
    if not rule_ids:
        return
    with tenant_context(tenant):
        _upsert_checked(tenant, rule_ids, now)


def _upsert_checked(tenant: Tenant, rule_ids: set[str], now: datetime) -> None:
    ordered = sorted(rule_ids)  # rows are locked in one order by every writer: no deadlock
    RuleCheckState.objects.bulk_create(
        [
            RuleCheckState(tenant=tenant, rule_id=rule_id, last_checked_at=now)
            for rule_id in ordered
        ],
        ignore_conflicts=True,
    )
    RuleCheckState.objects.for_tenant(tenant).filter(
        rule_id__in=ordered, last_checked_at__lt=now
    ).update(last_checked_at=now)


def save_settings(config: ComplianceSettings) -> ComplianceSettings:
    """Save a tenant's gate settings and have every pull request's stored decision recomputed
    (in a task: a tenant may have thousands). The gate API sees the change at once anyway: its
    cache is keyed by the settings version."""
    with transaction.atomic():
        if config.pk:
            config.version += 1
        config.save(audit_action="compliance_settings.updated" if config.pk else None)
        enqueue("compliance.refresh_decisions", tenant_id=config.tenant_id)
    return config


def refresh_decisions(tenant: Tenant) -> int:
    """Recompute the stored decision of every pull request of a tenant, one at a time."""
    config = settings_for(tenant)
    ids = list(
        PullRequest.objects.for_tenant(tenant)
        .filter(last_run_at__isnull=False)
        .values_list("pk", flat=True)
    )
    for pk in ids:
        with transaction.atomic():
            pull_request = PullRequest.objects.select_for_update().get(pk=pk)
            refresh_pull_request(pull_request, config)
    return len(ids)


def load_rules(path: Path | str = DEFAULT_CATALOG) -> LoadReport:
    """Load a catalog file: creates and updates rules (audited), never deletes one."""
    entries = read_catalog(path)
    with transaction.atomic():
        return load_catalog(entries, Rule)


def save_mapping(mapping: ToolRuleMapping) -> ToolRuleMapping:
    from apps.compliance.ingest.mapping import validate_pattern

    problem = validate_pattern(mapping.pattern)
    if problem:
        from django.core.exceptions import ValidationError

        raise ValidationError({"pattern": problem})
    mapping.save()
    return mapping
