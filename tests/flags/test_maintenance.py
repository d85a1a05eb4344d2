"""opsportal.contrib.maintenance: the middleware a client app installs to answer 503 while its
maintenance flag is on. Unit tests with OpenFeature's in-memory provider, then one end-to-end
test through the OFREP provider against the portal under gunicorn."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import GeneralError
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from apps.flags import services
from apps.flags.models import Environment, FlagKind
from opsportal.contrib import maintenance
from opsportal.contrib.maintenance import MaintenanceModeMiddleware
from tests.flags.conftest import set_state

FLAG = "maintenance-mode"
DOMAIN = "maintenance-tests"
E2E_DEADLINE_SECONDS = 5.0


def _flag(on: bool) -> InMemoryFlag:
    return InMemoryFlag("on" if on else "off", {"on": True, "off": False})


class CountingProvider(InMemoryProvider):
    """The in-memory provider, counting boolean evaluations; `switch` changes the flag."""

    def __init__(self, on: bool | None) -> None:
        super().__init__({} if on is None else {FLAG: _flag(on)})
        self.calls = 0
        self.contexts: list[EvaluationContext | None] = []

    def switch(self, on: bool) -> None:
        self._flags[FLAG] = _flag(on)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        self.calls += 1
        self.contexts.append(evaluation_context)
        return super().resolve_boolean_details(flag_key, default_value, evaluation_context)


class BrokenProvider(InMemoryProvider):
    """Fails like a provider whose backend is down."""

    def __init__(self) -> None:
        super().__init__({})

    def resolve_boolean_details(self, *args, **kwargs) -> FlagResolutionDetails[bool]:
        raise GeneralError("connection refused")


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("served")


@pytest.fixture(autouse=True)
def _openfeature_reset():
    yield
    api.shutdown()


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(maintenance, "clock", lambda: now[0])
    return now


@pytest.fixture
def provider(clock):
    def use(provider: InMemoryProvider) -> InMemoryProvider:
        api.set_provider_and_wait(provider, DOMAIN)
        return provider

    return use


def build(**overrides) -> MaintenanceModeMiddleware:
    names = {f"OPSPORTAL_MAINTENANCE_{name}": value for name, value in overrides.items()}
    with override_settings(OPSPORTAL_MAINTENANCE_CLIENT_DOMAIN=DOMAIN, **names):
        return MaintenanceModeMiddleware(ok)


def get(middleware, path: str = "/orders/", **headers) -> HttpResponse:
    return middleware(RequestFactory().get(path, headers=headers))


def test_flag_on_answers_a_self_contained_503_page(provider):
    provider(CountingProvider(on=True))
    response = get(build(RETRY_AFTER=120), HTTP_ACCEPT="text/html")
    assert response.status_code == 503
    assert response["Retry-After"] == "120"
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert "Down for maintenance" in page and "try again in about 2 minutes" in page
    assert not any(asset in page for asset in ("<link", "<script", "src=", "url("))


@pytest.mark.parametrize(
    ("accept", "json_answer"),
    [
        ("application/json", True),
        ("application/problem+json, application/json;q=0.9", True),
        ("text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_json_clients_get_a_problem_document(provider, accept, json_answer):
    provider(CountingProvider(on=True))
    headers = {"accept": accept} if accept else {}
    response = get(build(), **headers)
    assert response.status_code == 503
    assert response["Retry-After"] == "300"
    assert response["Cache-Control"] == "no-store"
    if json_answer:
        assert response["Content-Type"] == "application/problem+json"
        assert json.loads(response.content) == {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "Down for maintenance; retry later.",
        }
    else:
        assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/static/app.css", "/ping/x"])
def test_exempt_paths_are_served_without_evaluating(provider, path):
    flags = provider(CountingProvider(on=True))
    exempt = ("/healthz", "/readyz", "/static/", "/ping/")
    response = get(build(EXEMPT_PATHS=exempt), path)
    assert (response.status_code, response.content) == (200, b"served")
    assert flags.calls == 0


def test_flag_off_serves_normally(provider):
    flags = provider(CountingProvider(on=False))
    response = get(build())
    assert (response.status_code, response.content) == (200, b"served")
    assert flags.calls == 1
    context = flags.contexts[0]
    assert context.targeting_key == "maintenance"
    assert context.attributes == {"path": "/orders/", "host": "testserver"}


def test_rules_can_target_a_path(provider):
    def checkout_only(flag, context: EvaluationContext) -> FlagResolutionDetails[bool]:
        on = str(context.attributes.get("path", "")).startswith("/checkout")
        return FlagResolutionDetails(value=on, reason=Reason.TARGETING_MATCH)

    flag = InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=checkout_only)
    provider(InMemoryProvider({FLAG: flag}))
    middleware = build()
    assert get(middleware, "/checkout/pay").status_code == 503
    assert get(middleware, "/orders/").status_code == 200


@pytest.mark.parametrize("failing", [CountingProvider(on=None), BrokenProvider()])
def test_evaluation_errors_fail_open_with_one_warning_per_period(provider, clock, caplog, failing):
    provider(failing)
    middleware = build()
    with caplog.at_level(logging.WARNING, logger=maintenance.__name__):
        assert get(middleware, "/a").status_code == 200
        assert get(middleware, "/b").status_code == 200
        assert len(caplog.records) == 1
        clock[0] += 5.1
        assert get(middleware, "/a").status_code == 200
    assert len(caplog.records) == 2
    assert "could not be evaluated (serving normally)" in caplog.records[0].getMessage()


@pytest.mark.parametrize("failing", [CountingProvider(on=None), BrokenProvider()])
def test_evaluation_errors_fail_closed_when_configured(provider, failing):
    provider(failing)
    response = get(build(FAIL_OPEN=False))
    assert response.status_code == 503
    assert response["Retry-After"] == "300"


def test_answers_are_reused_for_the_cache_period(provider, clock):
    flags = provider(CountingProvider(on=False))
    middleware = build(CACHE_SECONDS=5)
    assert get(middleware).status_code == 200
    flags.switch(on=True)
    clock[0] += 4.9
    assert get(middleware).status_code == 200
    assert flags.calls == 1
    assert get(middleware, "/other/").status_code == 503  # another path has its own answer
    assert flags.calls == 2
    clock[0] += 0.2
    assert get(middleware).status_code == 503
    assert flags.calls == 3


def test_cache_seconds_zero_evaluates_every_request(provider):
    flags = provider(CountingProvider(on=False))
    middleware = build(CACHE_SECONDS=0)
    assert get(middleware).status_code == 200
    flags.switch(on=True)
    assert get(middleware).status_code == 503
    assert flags.calls == 2


def test_a_template_replaces_the_built_in_page(provider, tmp_path):
    (tmp_path / "maintenance.html").write_text("<p>Back in {{ retry_after }} s</p>")
    provider(CountingProvider(on=True))
    middleware = build(TEMPLATE="maintenance.html", RETRY_AFTER=60)
    templates = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [tmp_path]}]
    with override_settings(TEMPLATES=templates):
        response = get(middleware)
    assert (response.status_code, response.content) == (503, b"<p>Back in 60 s</p>")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_end_to_end_through_ofrep_against_the_portal(portal_url, tenant):
    flag = services.create_flag(
        tenant, key=FLAG, name="Maintenance mode", kind=FlagKind.MAINTENANCE
    )
    environment = Environment.objects.get(tenant=tenant, key="production")
    _, key = services.create_environment_key(environment, name="client-app")
    api.set_provider_and_wait(
        OFREPProvider(portal_url, headers_factory=lambda: {"Authorization": f"Bearer {key}"}),
        DOMAIN,
    )
    assert get(build(CACHE_SECONDS=0, FAIL_OPEN=False)).status_code == 200  # evaluated: off
    middleware = build(CACHE_SECONDS=0)  # fail open, so only the flag can answer 503

    set_state(flag, "production", enabled=True, fallthrough={"variant": "on"})
    started = time.monotonic()
    response = get(middleware)
    while response.status_code != 503 and time.monotonic() - started < E2E_DEADLINE_SECONDS:
        time.sleep(0.05)
        response = get(middleware)
    assert response.status_code == 503
    assert response["Retry-After"] == "300"
    assert get(middleware, "/healthz").status_code == 200
