"""The published OpenFeature Python SDK with the OFREP provider, against the portal under
gunicorn: every value type, a targeting match, a split, a disabled flag, a missing flag, and a
kill switch that reaches single, bulk and flagd-sync readers within 5 seconds."""

from __future__ import annotations

import time

import httpx
import pytest
from openfeature import api as openfeature
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from apps.flags import services

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
KILL_DEADLINE_SECONDS = 5.0


@pytest.fixture
def client(portal_url, production_key):
    openfeature.set_provider(
        OFREPProvider(
            portal_url, headers_factory=lambda: {"Authorization": f"Bearer {production_key}"}
        )
    )
    yield openfeature.get_client()
    openfeature.shutdown()


def test_sdk_evaluates_every_type_and_reason(client):
    pro = EvaluationContext(targeting_key="user-1", attributes={"plan": "pro", "market": "SA"})
    checkout = client.get_boolean_details("new-checkout", False, pro)
    assert (checkout.value, checkout.reason, checkout.variant) == (
        True,
        Reason.TARGETING_MATCH,
        "on",
    )
    banner = client.get_string_details("banner", "fallback", pro)
    assert (banner.value, banner.variant) == ("Sale", "promo")
    assert client.get_integer_details("page-size", 0).value == 20
    ratio = client.get_float_details("sample-ratio", 0.0)
    assert (ratio.value, ratio.reason) == (1.0, Reason.STATIC)
    limits = client.get_object_details("limits", {})
    assert (limits.value, limits.reason) == ({"rps": 10}, Reason.DISABLED)
    split = client.get_boolean_details(
        "new-checkout",
        False,
        EvaluationContext(targeting_key="user-2", attributes={"market": "FR"}),
    )
    assert split.reason == "SPLIT" and split.variant in {"on", "off"}
    assert split.flag_metadata["environment"] == "production"
    missing = client.get_boolean_details("does-not-exist", True)
    assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    no_key = client.get_boolean_details("new-checkout", False, EvaluationContext(attributes={}))
    assert no_key.error_code == ErrorCode.TARGETING_KEY_MISSING and no_key.value is False
    wrong_type = client.get_integer_details("banner", 7)
    assert (wrong_type.value, wrong_type.error_code) == (7, ErrorCode.TYPE_MISMATCH)


def _bulk(portal_url: str, key: str) -> dict:
    response = httpx.post(
        f"{portal_url}/ofrep/v1/evaluate/flags",
        json={"context": {"targetingKey": "user-1", "market": "SA"}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    return {item["key"]: item for item in response.json()["flags"]}


def _synced_state(portal_url: str, key: str) -> str:
    response = httpx.get(
        f"{portal_url}/api/v1/flags/flagd/production.json",
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    return response.json()["flags"]["new-checkout"]["state"]


def test_kill_switch_reaches_every_path_within_five_seconds(
    client, portal_url, production_key, flags
):
    context = EvaluationContext(targeting_key="user-1", attributes={"market": "SA"})
    assert client.get_boolean_value("new-checkout", False, context) is True
    assert _bulk(portal_url, production_key)["new-checkout"]["value"] is True
    assert _synced_state(portal_url, production_key) == "ENABLED"

    killed_at = time.monotonic()
    services.kill(flags["checkout"])
    seen: dict[str, float] = {}
    while len(seen) < 3 and time.monotonic() - killed_at < KILL_DEADLINE_SECONDS + 5:
        elapsed = time.monotonic() - killed_at
        if (
            "single" not in seen
            and client.get_boolean_value("new-checkout", True, context) is False
        ):
            seen["single"] = elapsed
        if (
            "bulk" not in seen
            and _bulk(portal_url, production_key)["new-checkout"]["reason"] == "DISABLED"
        ):
            seen["bulk"] = elapsed
        if "flagd" not in seen and _synced_state(portal_url, production_key) == "DISABLED":
            seen["flagd"] = elapsed
        time.sleep(0.05)
    assert set(seen) == {"single", "bulk", "flagd"}, seen
    assert max(seen.values()) <= KILL_DEADLINE_SECONDS, seen
