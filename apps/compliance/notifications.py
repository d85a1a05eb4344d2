"""Alerts for the compliance gate, run from the outbox after a run is recorded: one alert per
rule with new violations of a pull request (tier from the rule's tier), resolved when the pull
request no longer violates the rule. Raising again only counts (alerts deduplicate), so a retried
task is harmless."""

from __future__ import annotations

from django.db.models import Count

from apps.compliance import gate
from apps.compliance.models import CheckRun, PullRequest, Rule, Tier, Violation, ViolationStatus

ALERT_TIER = {Tier.BLOCK: 1, Tier.OVERRIDE: 2, Tier.WARNING: 3}


def notify_run(run_id: int, opened: dict[str, int]) -> int:
    """Raise one alert per rule with new violations (tier by the rule's tier), all in one
    `raise_alerts` call, and resolve the alerts of rules this pull request no longer violates.
    Idempotent: alerts deduplicate."""
    from apps.alerts.services import raise_alerts, resolve_alert

    run = CheckRun.objects.select_related("pull_request", "tenant").filter(pk=run_id).first()
    if run is None:
        return 0
    pull_request, tenant = run.pull_request, run.tenant
    still_open = dict(
        Violation.objects.filter(pull_request=pull_request, status=ViolationStatus.OPEN)
        .values_list("rule_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    rules = {rule.id: rule for rule in Rule.objects.filter(pk__in=[*opened, *still_open])}
    alerts = []
    for rule_id, count in sorted(opened.items()):
        rule = rules.get(rule_id)
        if rule is None or not still_open.get(rule_id):
            continue
        alerts.append(
            dict(
                source="compliance",
                tier=ALERT_TIER[rule.tier],
                dedup_key=alert_key(pull_request, rule_id),
                title=f"{rule.tier} {rule_id} in {pull_request}: {rule.name}",
                summary=(
                    f"{count} new {rule.tier} violation{'s' if count != 1 else ''} of {rule_id} "
                    f"({rule.name}) at {run.commit_sha[:12]} by {run.tool}. "
                    f"Gate: {pull_request.decision}."
                ),
                details={
                    "repository": pull_request.repository,
                    "pull_request": pull_request.number,
                    "rule": rule_id,
                    "tier": rule.tier,
                    "new_violations": count,
                    "decision": pull_request.decision,
                },
                links=[{"href": gate.dashboard_url(pull_request), "text": "Compliance dashboard"}],
            )
        )
    raise_alerts(tenant, alerts)
    for rule_id in _rules_with_alerts(pull_request) - set(still_open):
        resolve_alert(tenant, alert_key(pull_request, rule_id))
    return len(alerts)


def alert_key(pull_request: PullRequest, rule_id: str) -> str:
    return f"compliance:{pull_request.repository}#{pull_request.number}:{rule_id}"


def _rules_with_alerts(pull_request: PullRequest) -> set[str]:
    from apps.alerts.models import Alert, AlertStatus

    prefix = f"compliance:{pull_request.repository}#{pull_request.number}:"
    keys = (
        Alert.objects.for_tenant(pull_request.tenant_id)
        .filter(dedup_key__startswith=prefix)
        .exclude(status=AlertStatus.RESOLVED)
        .values_list("dedup_key", flat=True)
    )
    return {key[len(prefix) :] for key in keys}
