"""Demo data for alerts: channels, policies with an escalation channel, and alerts in every
state. The "Legacy chat webhook" points at a port where nothing listens, so `make run` shows
retries, the circuit breaker and the dead-letter queue doing their jobs for real."""

from __future__ import annotations

from apps.alerts import services
from apps.alerts.models import Alert, Channel, Policy
from apps.alerts.policies import ensure_default_policies
from apps.tenancy.models import Tenant

DEAD_END_URL = "http://127.0.0.1:9/hooks/legacy-chat"


def load_demo(tenant: Tenant) -> bool:
    """Returns False when the tenant already has alerts (the demo is loaded once)."""
    if Alert.objects.for_tenant(tenant).exists():
        return False
    ensure_default_policies(tenant)
    oncall, _ = services.save_channel(
        Channel(tenant=tenant, name="On-call email", kind="email", emails="oncall@example.com")
    )
    manager, _ = services.save_channel(
        Channel(
            tenant=tenant, name="Engineering manager", kind="email", emails="eng-mgr@example.com"
        )
    )
    services.save_channel(
        Channel(tenant=tenant, name="Legacy chat webhook", kind="webhook", url=DEAD_END_URL)
    )
    for policy in Policy.objects.for_tenant(tenant).filter(tier__in=[1, 2]):
        policy.escalation_channels.add(manager)
    Policy.objects.for_tenant(tenant).filter(tier=1).update(channel_kinds=["email", "webhook"])

    services.raise_alert(
        tenant,
        "compliance",
        1,
        "R07:acme/web#42",
        "BLOCK violation R07: secrets committed in acme/web#42",
        "A hard-coded AWS access key was found in settings/production.py line 12.",
        {"rule": "R07", "repository": "acme/web", "pull_request": 42},
        [{"href": "https://ci.example.com/acme/web/runs/9182", "text": "CI run"}],
    )
    burn = services.raise_alert(
        tenant,
        "slo",
        1,
        "burn:checkout-availability:page",
        "Checkout availability burning error budget 14.4x (1 h and 5 min)",
        "Error ratio 1.6 % against a 99.9 % objective.",
        {"slo": "checkout-availability", "burn_rate_1h": 16.0},
    ).alert
    services.acknowledge_alert(burn, "admin")
    drill = services.raise_alert(
        tenant,
        "drills",
        1,
        "drill:weekly-restore",
        "Weekly restore drill exceeded its RTO (17 min against 15 min)",
    ).alert
    services.close_alert(drill, "admin")
    services.raise_alert(
        tenant,
        "compliance",
        2,
        "R12:acme/api#311",
        "OVERRIDE-tier violation R12: coverage dropped to 71 % in acme/api#311",
    )
    for number, repo in enumerate(("acme/web", "acme/api", "acme/mobile"), start=1):
        services.raise_alert(
            tenant,
            "compliance",
            3,
            f"R21:{repo}",
            f"WARNING R21: README lacks an owner section in {repo}",
            details={"rank": number},
        )
    services.send_test(oncall)
    return True
