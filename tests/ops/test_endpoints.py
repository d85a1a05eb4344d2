import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from apps.core.services import beat
from apps.tenancy.roles import Role

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def test_healthz_is_ok_and_echoes_a_request_id():
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "abc-123"


def test_a_request_id_is_generated_when_missing_or_unsafe():
    generated = Client().get("/healthz")["X-Request-ID"]
    assert len(generated) == 32
    unsafe = Client().get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert unsafe["X-Request-ID"] != "bad id\nwith newline" and len(unsafe["X-Request-ID"]) == 32


def test_request_id_lands_in_the_audit_event(tenant, make_token, api):
    client = api(make_token(tenant, Role.CI))
    response = client.post(
        "/api/v1/audit/evidence",
        {"kind": "k", "content": {}},
        format="json",
        HTTP_X_REQUEST_ID="req-77",
    )
    assert response.status_code == 201
    from apps.audit.models import AuditEvent

    event = AuditEvent.objects.get(action="evidence.stored")
    assert event.request_id == "req-77"
    assert event.actor_token_id is not None and event.actor_label == "token:t-ci"


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")
def test_readyz_ready_when_database_broker_beat_and_migrations_are():
    beat()
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "beat": "ok",
        "broker": "ok",
    }


def test_readyz_names_a_stale_beat():
    from apps.core.models import Heartbeat

    Heartbeat.objects.create(name="beat", beat_at=timezone.now() - timezone.timedelta(minutes=5))
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert "beat heartbeat is" in response.json()["errors"]["beat"]


def test_readyz_names_the_database_when_it_is_unreachable():
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/readyz');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere",
        "DATABASE_CONNECT_TIMEOUT": "2",
        "DJANGO_SETTINGS_MODULE": "opsportal.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 503
    assert "database unreachable" in outcome["body"]["errors"]["database"]
    assert outcome["body"]["detail"].startswith("Not ready: database")


def test_metrics_expose_request_histograms_task_outcomes_and_outbox_backlog(
    tenant, make_token, api
):
    from apps.core.services import enqueue, record_task_outcome

    api(make_token(tenant)).get("/api/v1/tenancy/me")
    record_task_outcome("core.beat_heartbeat", "SUCCESS")
    enqueue("core.mark_outbox_done", note="m")
    body = Client().get("/metrics").content.decode()
    assert (
        'opsportal_http_request_duration_seconds_bucket{le="0.005",method="GET",'
        'route="v1:whoami"}' in body
    )
    assert 'opsportal_celery_task_outcomes{state="SUCCESS",task="core.beat_heartbeat"} 1.0' in body
    assert "opsportal_outbox_backlog 1.0" in body


def test_metrics_can_require_a_bearer_token(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics").status_code == 401
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert ok.status_code == 200


def test_security_headers_are_set():
    response = Client().get("/healthz")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_hsts_is_sent_on_https_when_not_debug():
    response = Client().get("/healthz", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
