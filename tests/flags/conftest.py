"""Flags fixtures: a tenant with the demo-like flags, an environment key, fresh caches."""

from __future__ import annotations

import pytest

from apps.flags import runtime, services, stats
from apps.flags.models import Environment, FlagState


@pytest.fixture(autouse=True)
def _fresh_flag_caches(settings):
    settings.FLAGS_CONFIG_POLL_SECONDS = 0
    settings.FLAGS_STATS_FLUSH_SECONDS = 3600  # tests that flush say so
    stats._take()
    runtime.reset()
    runtime.limiter._windows.clear()
    yield
    runtime.reset()


def set_state(flag, environment: str, **changes):
    state = FlagState.objects.get(flag=flag, environment__key=environment)
    return services.update_state(state, changes=changes, expected_version=state.version)


@pytest.fixture
def flags(tenant, django_capture_on_commit_callbacks):
    """Five flags in production, one of each type, covering every OFREP reason."""
    with django_capture_on_commit_callbacks(execute=True):
        services.create_segment(
            tenant,
            key="gulf",
            name="Gulf markets",
            conditions={"attribute": "market", "op": "in", "value": ["SA", "AE"]},
        )
        checkout = services.create_flag(tenant, key="new-checkout", name="New checkout")
        set_state(
            checkout,
            "production",
            enabled=True,
            rules=[{"segment": "gulf", "variant": "on"}],
            fallthrough={
                "split": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]
            },
        )
        banner = services.create_flag(
            tenant,
            key="banner",
            name="Banner",
            value_type="string",
            variants={"plain": "Welcome", "promo": "Sale"},
            default_variant="plain",
        )
        set_state(
            banner,
            "production",
            enabled=True,
            rules=[
                {
                    "conditions": {"attribute": "plan", "op": "equals", "value": "pro"},
                    "variant": "promo",
                }
            ],
        )
        page = services.create_flag(
            tenant,
            key="page-size",
            name="Page size",
            value_type="integer",
            variants={"small": 20, "large": 50},
            default_variant="small",
        )
        set_state(page, "production", enabled=True)
        ratio = services.create_flag(
            tenant,
            key="sample-ratio",
            name="Sample ratio",
            value_type="float",
            variants={"low": 0.1, "full": 1.0},
            default_variant="full",
        )
        set_state(ratio, "production", enabled=True)
        limits = services.create_flag(
            tenant,
            key="limits",
            name="Limits",
            value_type="object",
            variants={"std": {"rps": 10}, "big": {"rps": 100}},
            default_variant="std",
        )
        set_state(limits, "production", enabled=False)
    return {"checkout": checkout, "banner": banner, "page": page, "ratio": ratio, "limits": limits}


@pytest.fixture
def production_key(tenant, flags, django_capture_on_commit_callbacks) -> str:
    environment = Environment.objects.get(tenant=tenant, key="production")
    with django_capture_on_commit_callbacks(execute=True):
        _, plaintext = services.create_environment_key(environment, name="web")
    return plaintext
