import pytest
from django.conf import settings
from django.db import connection, transaction

from apps.audit.models import EvidenceArtifact
from apps.audit.services import store_evidence
from apps.tenancy import rls

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tenants_evidence(tenant, other_tenant):
    mine = store_evidence(tenant_id=tenant.pk, kind="report", period="a", content={"n": 1})
    theirs = store_evidence(tenant_id=other_tenant.pk, kind="report", period="b", content={"n": 2})
    return mine, theirs


def test_api_lists_only_the_callers_tenant(two_tenants_evidence, tenant, make_token, api):
    mine, _theirs = two_tenants_evidence
    response = api(make_token(tenant)).get("/api/v1/audit/evidence")
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [mine.pk]


def test_api_audit_events_are_scoped(two_tenants_evidence, tenant, make_token, api):
    response = api(make_token(tenant)).get("/api/v1/audit/events")
    chains = {row["chain"] for row in response.json()["results"]}
    assert chains == {f"tenant:{tenant.pk}"}


def _raw_count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


@pytest.fixture
def app_role():
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{settings.DATABASE_APP_ROLE}"')
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


@pytest.mark.postgres
def test_raw_sql_without_tenant_sees_nothing(two_tenants_evidence, app_role):
    rls.clear_scope()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('opsportal.tenant_id', '', false),"
            " set_config('opsportal.all_tenants', '', false)"
        )
    assert _raw_count("audit_evidenceartifact") == 0
    assert _raw_count("tenancy_apitoken") == 0


@pytest.mark.postgres
def test_raw_sql_with_tenant_sees_only_that_tenant(two_tenants_evidence, tenant, app_role):
    with rls.tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT tenant_id FROM audit_evidenceartifact")
        assert {row[0] for row in cursor.fetchall()} == {tenant.pk}
    with rls.all_tenants_context():
        assert _raw_count("audit_evidenceartifact") == 2


@pytest.mark.postgres
def test_raw_insert_into_another_tenant_is_refused(tenant, other_tenant, app_role):
    from django.db.utils import ProgrammingError

    with rls.tenant_context(tenant), pytest.raises(ProgrammingError, match="row-level security"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_evidenceartifact (tenant_id, kind, period, content, sha256,"
                " created_at) VALUES (%s, 'x', '', '{}', '', now())",
                [other_tenant.pk],
            )


@pytest.mark.postgres
def test_app_role_cannot_update_or_delete_audit_events(tenant, app_role):
    from django.db.utils import ProgrammingError

    with rls.all_tenants_context(), pytest.raises(ProgrammingError, match="permission denied"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditevent SET action = 'x'")


def test_for_tenant_scopes_and_none_means_nothing(two_tenants_evidence, tenant):
    mine, _ = two_tenants_evidence
    assert list(EvidenceArtifact.objects.for_tenant(tenant)) == [mine]
    assert EvidenceArtifact.objects.for_tenant(None).count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_lists_read_from_the_replica_under_the_same_rls_scope(tenant, other_tenant, make_token):
    """DATABASE_REPLICA_URL set (here: the same database as the app role): list reads go to
    the replica connection, which carries the request's tenant scope too."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    store_evidence(tenant_id=tenant.pk, kind="report", period="a", content={"n": 1})
    store_evidence(tenant_id=other_tenant.pk, kind="report", period="b", content={"n": 2})
    token = make_token(tenant)
    db = connection.settings_dict
    url = (
        f"postgresql://{settings.DATABASE_APP_ROLE}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    script = (
        "import django, json; django.setup();"
        "from django.db import connections; from django.test import Client;"
        f"r = Client().get('/api/v1/audit/evidence', HTTP_AUTHORIZATION='Bearer {token}');"
        "print(json.dumps({'status': r.status_code, 'periods': "
        "[x['period'] for x in r.json()['results']], "
        "'replica_used': connections['replica'].connection is not None}))"
    )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DATABASE_REPLICA_URL": url,
        "DJANGO_SETTINGS_MODULE": "opsportal.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"status": 200, "periods": ["a"], "replica_used": True}, result.stderr


@pytest.mark.postgres
def test_a_superuser_scoped_to_one_tenant_can_still_create_another(tenant, app_role):
    """The new tenant's audit event goes to its own chain, outside the request's scope."""
    from apps.audit.models import AuditEvent
    from apps.tenancy.services import create_tenant

    with rls.tenant_context(tenant):
        created = create_tenant(slug="initech", name="Initech")
    with rls.all_tenants_context():
        event = AuditEvent.objects.get(action="tenant.created", tenant=created)
    assert event.chain == f"tenant:{created.pk}"


def test_audit_actor_ip_honours_only_trusted_proxies(tenant, make_token, api, settings):
    from apps.audit.models import AuditEvent

    client = api(make_token(tenant, "ci"))
    body = {"kind": "k", "content": {}}
    client.post(
        "/api/v1/audit/evidence",
        body,
        format="json",
        HTTP_X_FORWARDED_FOR="6.6.6.6",
        REMOTE_ADDR="10.0.0.9",
    )
    settings.TRUSTED_PROXY_COUNT = 1
    client.post(
        "/api/v1/audit/evidence",
        body,
        format="json",
        HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7",
        REMOTE_ADDR="10.0.0.9",
    )
    ips = list(
        AuditEvent.objects.filter(action="evidence.stored")
        .order_by("id")
        .values_list("ip", flat=True)
    )
    assert ips == ["10.0.0.9", "203.0.113.7"]


def test_lists_use_cursor_pagination(tenant, make_token, api):
    for period in ("p1", "p2", "p3"):
        store_evidence(tenant_id=tenant.pk, kind="report", period=period, content={})
    client = api(make_token(tenant))
    first = client.get("/api/v1/audit/evidence?page_size=2").json()
    assert [row["period"] for row in first["results"]] == ["p3", "p2"]
    assert "cursor=" in first["next"] and "offset" not in first["next"]
    second = client.get(first["next"]).json()
    assert [row["period"] for row in second["results"]] == ["p1"]
    assert second["next"] is None
