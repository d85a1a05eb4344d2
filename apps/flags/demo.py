"""Demo flags: a release rolling out (a plan at 25 % that an SLO or canary signal halts), a
market-targeted string flag, an object config, a kill switch pulled in production, a maintenance
flag, change requests, 35 days of evaluation counts, and an environment key per environment
(plaintext printed once by seed_demo)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.flags import rollouts, services
from apps.flags.models import Environment, Flag, FlagEvaluationCount, FlagKind, FlagState
from apps.tenancy.models import Tenant

SEGMENTS = [
    ("gulf-markets", "Gulf markets", {"attribute": "market", "op": "in", "value": ["SA", "AE"]}),
    (
        "pilot-cohort",
        "Pilot cohort",
        {
            "any": [
                {"attribute": "cohort", "op": "equals", "value": "pilot"},
                {"attribute": "email", "op": "ends_with", "value": "@acme.example"},
            ]
        },
    ),
]


def _state(flag: Flag, environment: str) -> FlagState:
    return FlagState.objects.get(flag=flag, environment__key=environment)


def _set(flag: Flag, environment: str, **changes) -> None:
    state = _state(flag, environment)
    services.update_state(state, changes=changes, expected_version=state.version)


def load_demo(tenant: Tenant) -> dict[str, str] | None:
    """Returns {environment: plaintext key} the first time, None when already loaded."""
    if Flag.objects.for_tenant(tenant).exists():
        return None
    services.ensure_environments(tenant)
    for key, name, conditions in SEGMENTS:
        services.create_segment(tenant, key=key, name=name, conditions=conditions)

    checkout = services.create_flag(
        tenant,
        key="new-checkout",
        name="New checkout flow",
        kind=FlagKind.RELEASE,
        owner="web-team@acme.example",
        tags=["web", "payments"],
    )
    for environment in ("development", "staging"):
        _set(checkout, environment, enabled=True, fallthrough={"variant": "on"})
    _set(
        checkout,
        "production",
        enabled=True,
        rules=[{"name": "pilot users first", "segment": "pilot-cohort", "variant": "on"}],
    )
    plan = rollouts.start_rollout(
        _state(checkout, "production"),
        min_dwell_minutes=24 * 60,
        halt_on=["slo:checkout-availability", "canary:web"],
    )
    for _ in range(2):  # at 25 % now
        plan = rollouts.advance(plan, force=True)

    banner = services.create_flag(
        tenant,
        key="home-banner",
        name="Home page banner",
        value_type="string",
        variants={"default": "Welcome", "ramadan": "Ramadan Kareem", "sale": "Black Friday sale"},
        default_variant="default",
        kind=FlagKind.EXPERIMENT,
        owner="growth@acme.example",
    )
    _set(
        banner,
        "production",
        enabled=True,
        rules=[
            {"segment": "gulf-markets", "variant": "ramadan"},
            {
                "conditions": {"attribute": "app_version", "op": "semver_gte", "value": "5.2.0"},
                "split": [{"variant": "sale", "weight": 50}, {"variant": "default", "weight": 50}],
            },
        ],
    )

    limits = services.create_flag(
        tenant,
        key="search-limits",
        name="Search limits",
        value_type="object",
        variants={
            "standard": {"page_size": 20, "timeout_ms": 800},
            "relaxed": {"page_size": 50, "timeout_ms": 1500},
        },
        default_variant="standard",
        kind=FlagKind.OPERATIONAL,
    )
    for environment in ("development", "staging", "production"):
        _set(limits, environment, enabled=True)

    recommendations = services.create_flag(
        tenant,
        key="recommendations",
        name="Recommendations widget (kill switch)",
        kind=FlagKind.KILL_SWITCH,
        default_variant="off",
        owner="sre@acme.example",
    )
    for environment in ("development", "staging", "production"):
        _set(recommendations, environment, enabled=True, fallthrough={"variant": "on"})
    services.kill(recommendations, Environment.objects.for_tenant(tenant).filter(key="production"))

    services.create_flag(
        tenant,
        key="maintenance-mode",
        name="Maintenance mode",
        kind=FlagKind.MAINTENANCE,
        owner="sre@acme.example",
    )
    _evaluation_history(tenant)
    _change_requests(limits, banner)
    keys = {}
    for environment in Environment.objects.for_tenant(tenant):
        _, plaintext = services.create_environment_key(environment, name=f"demo-{environment.key}")
        keys[environment.key] = plaintext
    return keys


def _evaluation_history(tenant: Tenant) -> None:
    """35 days of production evaluations, so the statistics and the stale report have data:
    `search-limits` (operational, 20 days old) has only ever served `standard`."""
    production = Environment.objects.get(tenant=tenant, key="production")
    today = timezone.now().date()
    served = {
        "new-checkout": {"on": 2_500, "off": 7_500},
        "home-banner": {"default": 6_000, "ramadan": 1_500, "sale": 2_500},
        "search-limits": {"standard": 12_000},
    }
    rows = []
    for key, variants in served.items():
        flag = Flag.objects.get(tenant=tenant, key=key)
        for age in range(35):
            for variant, count in variants.items():
                rows.append(
                    FlagEvaluationCount(
                        tenant=tenant,
                        environment=production,
                        flag=flag,
                        variant=variant,
                        day=today - timedelta(days=age),
                        count=count + 37 * age % 500,
                    )
                )
        FlagState._base_manager.filter(flag=flag, environment=production).update(
            last_evaluated_at=timezone.now()
        )
    FlagEvaluationCount.objects.bulk_create(rows)
    Flag._base_manager.filter(tenant=tenant, key="search-limits").update(
        created_at=timezone.now() - timedelta(days=20)
    )


def _change_requests(limits: Flag, banner: Flag) -> None:
    """A production change waiting for a second operator, and a scheduled one."""
    from apps.flags.changes import propose_state_change

    state = _state(limits, "production")
    propose_state_change(
        state,
        changes={"fallthrough": {"variant": "relaxed"}},
        expected_version=state.version,
        note="Relax search limits for the catalogue import",
    )
    banner_state = _state(banner, "production")
    propose_state_change(
        banner_state,
        changes={"fallthrough": {"variant": "sale"}},
        expected_version=banner_state.version,
        apply_at=timezone.now() + timedelta(days=4),
        note="Black Friday banner for everyone",
    )
