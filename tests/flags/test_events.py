"""SSE change events (OFREP ADR 0008) from the ASGI events process under uvicorn: a bulk answer
advertises the stream, a change sends `refetchEvaluation` within seconds, a revoked key ends it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from apps.flags import services
from apps.flags.models import EnvironmentKey
from tests.browser import ROOT, free_port, server_env
from tests.flags.test_ofrep import _post

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
DEADLINE_SECONDS = 5.0


@pytest.fixture
def events_url():
    """The portal's ASGI application under uvicorn, as the least-privilege role."""
    port = free_port()
    env = server_env()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "opsportal.asgi:application", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail(f"uvicorn did not start: {server.stderr.read() if server.stderr else ''}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _refresh_url(production_key: str, events_url: str, settings) -> str:
    settings.FLAGS_SSE_BASE_URL = events_url
    body = _post("/ofrep/v1/evaluate/flags", production_key, {"context": {"targetingKey": "u"}})
    payload = body.json()
    (connection_,) = payload["refreshConnections"]
    assert connection_["type"] == "sse" and connection_["inactivityDelaySec"] == 120
    assert payload["eventStreams"] == payload["refreshConnections"]
    again = _post("/ofrep/v1/evaluate/flags", production_key, {"context": {"targetingKey": "u"}})
    assert again["ETag"] == body["ETag"], "the advertised URL does not change the ETag"
    return connection_["url"]


def _events(stream) -> list[dict]:
    return [json.loads(line[5:]) for line in stream if line.startswith("data:")]


def test_a_change_is_announced_within_five_seconds(production_key, flags, events_url, settings):
    url = _refresh_url(production_key, events_url, settings)
    with httpx.stream("GET", url, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")
        changed_at = time.monotonic()
        services.kill(flags["checkout"])
        for line in lines:
            if line.startswith("data:"):
                event = json.loads(line[5:])
                break
        elapsed = time.monotonic() - changed_at
    assert event["type"] == "refetchEvaluation" and event["etag"].startswith('"v')
    assert elapsed <= DEADLINE_SECONDS, elapsed


def test_a_reconnect_after_a_change_gets_the_event_at_once(
    production_key, flags, events_url, settings
):
    url = _refresh_url(production_key, events_url, settings)
    with httpx.stream("GET", url, timeout=20) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")
        seen = int(next(lines).rsplit(" at v", 1)[1])  # ": environment N at vX"
    services.kill(flags["checkout"])  # while nobody listens
    headers = {"Last-Event-ID": str(seen)}
    reconnected_at = time.monotonic()
    with httpx.stream("GET", url, timeout=20, headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                break
    assert event["type"] == "refetchEvaluation" and event["etag"] != f'"v{seen}"'
    assert time.monotonic() - reconnected_at <= 2.0, "sent at once, not at the next change"


def test_a_revoked_key_ends_its_stream_and_bad_channels_are_refused(
    production_key, flags, events_url, settings
):
    url = _refresh_url(production_key, events_url, settings)
    assert httpx.get(url + "x", timeout=5).status_code == 401
    key = EnvironmentKey.objects.get(prefix=production_key.split("_")[1])
    with httpx.stream("GET", url, timeout=20) as response:
        lines = response.iter_lines()
        next(lines)
        started = time.monotonic()
        services.revoke_environment_key(key)
        rest = list(lines)  # the server closes the stream
    assert time.monotonic() - started <= DEADLINE_SECONDS
    assert _events(rest) == []
    assert httpx.get(url, timeout=5).status_code == 401


def test_the_wsgi_server_refers_streams_to_the_events_process(production_key, flags, settings):
    from django.test import Client

    url = _refresh_url(production_key, "http://testserver", settings)
    response = Client().get(url.removeprefix("http://testserver"))
    assert response.status_code == 503
