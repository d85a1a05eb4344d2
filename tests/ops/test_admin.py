import pytest
from django.test import Client

from apps.tenancy.roles import Role
from apps.tenancy.services import add_member

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-enough-password-1"


@pytest.fixture
def staff(django_user_model, tenant, other_tenant):
    user = django_user_model.objects.create_user("staff", password=PASSWORD, is_staff=True)
    add_member(tenant=tenant, user=user, role=Role.VIEWER)
    return user


def test_admin_index_is_the_operations_overview(staff):
    client = Client()
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"Operations overview" in response.content
    assert [t.title for t in response.context["tiles"]][:3] == [
        "Tenants & access",
        "Audit trail",
        "Workers & outbox",
    ]


def test_staff_cannot_switch_to_a_tenant_they_do_not_belong_to(staff, other_tenant):
    client = Client()
    client.force_login(staff)
    response = client.post("/admin/switch-tenant/", {"tenant": other_tenant.pk})
    assert response.status_code == 400


def test_tenant_switch_requires_csrf(staff, tenant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post("/admin/switch-tenant/", {"tenant": tenant.pk}).status_code == 403


def test_admin_login_locks_out_after_repeated_failures(staff):
    client = Client()
    for _ in range(5):
        client.post("/admin/login/?next=/admin/", {"username": "staff", "password": "wrong"})
    locked = client.post("/admin/login/?next=/admin/", {"username": "staff", "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_openapi_schema_is_generated_and_served():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/audit/evidence" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    docs = Client().get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_session_api_calls_are_audited_as_the_user(staff, tenant):
    from django.test import Client

    from apps.audit.models import AuditEvent
    from apps.tenancy.services import add_member

    add_member(tenant=tenant, user=staff, role=Role.TENANT_ADMIN)
    client = Client()
    client.force_login(staff)
    response = client.patch(
        "/api/v1/tenancy/tenant",
        {"name": "Via session", "version": 1},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    event = AuditEvent.objects.get(action="tenant.updated")
    assert (event.actor_user_id, event.actor_label) == (staff.pk, "staff")


def test_admin_creates_a_token_and_shows_it_once(django_user_model, tenant):
    from apps.tenancy.models import ApiToken

    admin = django_user_model.objects.create_superuser("root", "r@example.com", PASSWORD)
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/tenancy/apitoken/add/",
        {"tenant": tenant.pk, "name": "deploy-bot", "role": "ci"},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert any("will not be shown again: ops_" in m for m in shown), shown
    token = ApiToken.objects.get(name="deploy-bot")
    plaintext = next(m for m in shown if "ops_" in m).split(": ")[-1]
    assert plaintext.startswith(f"ops_{token.prefix}_")
    assert plaintext.split("_", 2)[2] not in token.secret_hash
    listing = client.get("/admin/tenancy/apitoken/")
    assert plaintext.encode() not in listing.content
