"""OFREP single and bulk evaluation, its error format, caching and flagd sync, in-process."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.flags import services
from apps.flags.models import Environment, Flag, FlagState
from tests.flags.conftest import set_state

pytestmark = pytest.mark.django_db


def _post(path: str, key: str | None, body, header: str = "bearer", **extra):
    client = Client()
    headers = {}
    if key and header == "bearer":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    elif key:
        headers["HTTP_X_API_KEY"] = key
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **headers, **extra)


def evaluate(key, flag, context=None, **extra):
    return _post(f"/ofrep/v1/evaluate/flags/{flag}", key, {"context": context or {}}, **extra)


def test_each_value_type_and_reason(production_key):
    checks = [
        ("new-checkout", {"targetingKey": "u1", "market": "SA"}, True, "on", "TARGETING_MATCH"),
        ("banner", {"targetingKey": "u1", "plan": "pro"}, "Sale", "promo", "TARGETING_MATCH"),
        ("banner", {"targetingKey": "u1", "plan": "free"}, "Welcome", "plain", "DEFAULT"),
        ("page-size", {}, 20, "small", "STATIC"),
        ("sample-ratio", {}, 1.0, "full", "STATIC"),
        ("limits", {}, {"rps": 10}, "std", "DISABLED"),
    ]
    for flag, context, value, variant, reason in checks:
        response = evaluate(production_key, flag, context)
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["key"], body["value"], body["variant"], body["reason"]) == (
            flag,
            value,
            variant,
            reason,
        )
        assert body["metadata"]["environment"] == "production"
        assert isinstance(body["metadata"]["flagVersion"], int)
    ratio = json.loads(evaluate(production_key, "sample-ratio").content)
    assert isinstance(ratio["value"], float), "a float flag stays a float on the wire"


def test_split_reason_and_stable_bucket(production_key):
    seen = {}
    for user in range(40):
        body = evaluate(production_key, "new-checkout", {"targetingKey": f"user-{user}"}).json()
        assert body["reason"] == "SPLIT"
        seen[user] = body["variant"]
        again = evaluate(production_key, "new-checkout", {"targetingKey": f"user-{user}"}).json()
        assert again["variant"] == body["variant"], "the same user always lands in one bucket"
    assert set(seen.values()) == {"on", "off"}


def test_x_api_key_header_is_accepted(production_key):
    response = evaluate(production_key, "page-size", header="x-api-key")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "raw, code",
    [
        ("{not json", "PARSE_ERROR"),
        ("[1, 2]", "PARSE_ERROR"),
        (json.dumps({"context": "user-1"}), "INVALID_CONTEXT"),
        (json.dumps({"context": {"targetingKey": 42}}), "INVALID_CONTEXT"),
    ],
)
def test_bad_requests_get_the_spec_error(production_key, raw, code):
    response = _post("/ofrep/v1/evaluate/flags/page-size", production_key, raw)
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == code and body["errorDetails"]
    assert body["key"] == "page-size"


def test_split_without_targeting_key_is_targeting_key_missing(production_key):
    response = evaluate(production_key, "new-checkout", {"market": "FR"})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "TARGETING_KEY_MISSING"


def test_unknown_and_archived_flags_are_not_found(
    production_key, flags, django_capture_on_commit_callbacks
):
    response = evaluate(production_key, "no-such-flag")
    assert response.status_code == 404
    assert response.json() == {
        "key": "no-such-flag",
        "errorCode": "FLAG_NOT_FOUND",
        "errorDetails": "No flag 'no-such-flag' in environment 'production'.",
    }
    flag = flags["page"]
    with django_capture_on_commit_callbacks(execute=True):
        services.update_flag(flag, changes={"archived": True}, expected_version=flag.version)
    assert evaluate(production_key, "page-size").status_code == 404


def test_auth_failures_have_no_body(production_key):
    for key in (None, "ofk_nope_nope", production_key[:-2] + "xx", "ops_abc_def"):
        response = evaluate(key, "page-size")
        assert response.status_code == 401
        assert response.content == b""
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_refused(tenant, flags, django_capture_on_commit_callbacks):
    environment = Environment.objects.get(tenant=tenant, key="production")
    with django_capture_on_commit_callbacks(execute=True):
        key, plaintext = services.create_environment_key(environment, name="temp")
    assert evaluate(plaintext, "page-size").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_environment_key(key)
    assert evaluate(plaintext, "page-size").status_code == 401


def test_rate_limit_answers_429_with_retry_after(production_key, settings):
    settings.FLAGS_OFREP_RATE_PER_MINUTE = 3
    statuses = [evaluate(production_key, "page-size").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = evaluate(production_key, "page-size")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.content == b""


def test_bulk_evaluates_every_flag_with_etag_and_304(production_key):
    body = {"context": {"targetingKey": "user-7", "plan": "pro"}}
    response = _post("/ofrep/v1/evaluate/flags", production_key, body)
    assert response.status_code == 200
    payload = response.json()
    by_key = {item["key"]: item for item in payload["flags"]}
    assert set(by_key) == {"banner", "limits", "new-checkout", "page-size", "sample-ratio"}
    assert by_key["banner"]["value"] == "Sale"
    etag = response["ETag"]
    again = _post("/ofrep/v1/evaluate/flags", production_key, body, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag and again.content == b""
    other = {"context": {"targetingKey": "user-7", "plan": "free"}}
    changed = _post("/ofrep/v1/evaluate/flags", production_key, other, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200, "another context evaluates differently: a new ETag"
    assert changed["ETag"] != etag


def test_bulk_reports_per_flag_errors(production_key):
    response = _post("/ofrep/v1/evaluate/flags", production_key, {"context": {}})
    by_key = {item["key"]: item for item in response.json()["flags"]}
    assert by_key["new-checkout"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert by_key["page-size"]["value"] == 20
    bad = _post("/ofrep/v1/evaluate/flags", production_key, "nope")
    assert bad.status_code == 400 and bad.json()["errorCode"] == "PARSE_ERROR"


@pytest.mark.django_db(transaction=True)  # as in production: no test transaction around it
def test_steady_state_evaluation_makes_no_database_query(production_key, django_assert_num_queries):
    evaluate(production_key, "page-size")  # warm the process's snapshot
    with django_assert_num_queries(0):
        for _ in range(5):
            assert (
                evaluate(production_key, "new-checkout", {"targetingKey": "u"}).status_code == 200
            )
            assert (
                _post("/ofrep/v1/evaluate/flags", production_key, {"context": {}}).status_code
                == 200
            )


def test_a_change_is_served_after_commit(
    production_key, flags, settings, django_capture_on_commit_callbacks
):
    settings.FLAGS_CONFIG_POLL_SECONDS = 3600  # only the published version can refresh it
    assert evaluate(production_key, "page-size").json()["value"] == 20
    with django_capture_on_commit_callbacks(execute=True):
        set_state(flags["page"], "production", fallthrough={"variant": "large"})
    settings.FLAGS_CONFIG_POLL_SECONDS = 0
    assert evaluate(production_key, "page-size").json()["value"] == 50


def test_kill_switch_turns_the_flag_off(production_key, flags, django_capture_on_commit_callbacks):
    context = {"targetingKey": "u1", "market": "SA"}
    assert evaluate(production_key, "new-checkout", context).json()["value"] is True
    with django_capture_on_commit_callbacks(execute=True):
        services.kill(flags["checkout"])
    body = evaluate(production_key, "new-checkout", context).json()
    assert (body["value"], body["reason"]) == (False, "DISABLED")
    state = FlagState.objects.get(flag=flags["checkout"], environment__key="production")
    assert state.killed_at is not None and not state.enabled


def test_flagd_sync_serves_the_environment_with_etag(production_key, tenant):
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {production_key}"}
    response = client.get("/api/v1/flags/flagd/production.json", **auth)
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["flags"]["new-checkout"]["state"] == "ENABLED"
    assert document["flags"]["limits"]["state"] == "DISABLED"
    assert document["$evaluators"]["segment_gulf"] == {"in": [{"var": "market"}, ["SA", "AE"]]}
    assert response["ETag"]
    cached = client.get(
        "/api/v1/flags/flagd/production.json", HTTP_IF_NONE_MATCH=response["ETag"], **auth
    )
    assert cached.status_code == 304
    assert client.get("/api/v1/flags/flagd/staging.json", **auth).status_code == 403
    assert client.get("/api/v1/flags/flagd/production.json").status_code == 401


def test_environments_of_another_tenant_are_invisible(
    production_key, other_tenant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        other = services.create_flag(other_tenant, key="secret-flag", name="Theirs")
        set_state(other, "production", enabled=True)
    assert evaluate(production_key, "secret-flag").status_code == 404
    assert Flag.objects.filter(key="secret-flag").count() == 1


def test_a_configuration_that_fails_to_load_keeps_the_last_good_one_serving(
    production_key, flags, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.flags import flagd as flagd_module

    assert evaluate(production_key, "page-size").json()["value"] == 20
    with django_capture_on_commit_callbacks(execute=True):
        set_state(flags["page"], "production", fallthrough={"variant": "large"})

    def broken(environment):
        raise RuntimeError("a row the compiler cannot handle")

    monkeypatch.setattr(flagd_module, "environment_document", broken)
    response = evaluate(production_key, "page-size")
    assert response.status_code == 200 and response.json()["value"] == 20
    monkeypatch.undo()
    assert evaluate(production_key, "page-size").json()["value"] == 50, "the next poll recovers"
