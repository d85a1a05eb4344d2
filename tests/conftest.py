"""Shared fixtures. Tests hit the real database (PostgreSQL in CI). API requests run as the
least-privilege application role (`SET ROLE`), so row-level security is in force for them."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.tenancy import rls
from apps.tenancy.models import Tenant
from apps.tenancy.roles import Role
from apps.tenancy.services import create_api_token, create_tenant
from tests.browser import browser, portal_url  # noqa: F401  (fixtures for browser tests)

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
_skipped_postgres_tests: list[str] = []


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") and not IS_POSTGRES:
        pytest.skip("needs PostgreSQL")


def pytest_runtest_logreport(report):
    if report.skipped and "postgres" in report.keywords:
        _skipped_postgres_tests.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("REQUIRE_POSTGRES") != "1":
        return
    if not IS_POSTGRES:
        print("\nREQUIRE_POSTGRES=1 but the suite ran on", settings.DATABASES["default"]["ENGINE"])
        session.exitstatus = 1
    elif _skipped_postgres_tests:
        print("\nPostgreSQL-only tests were skipped on PostgreSQL:", *_skipped_postgres_tests)
        session.exitstatus = 1


@pytest.fixture(scope="session", autouse=True)
def _collected_static():
    """Production mode serves hashed static files from a manifest: collect them once."""
    from django.core.management import call_command

    manifest = settings.STATIC_ROOT / "staticfiles.json"
    if not settings.DEBUG and not manifest.exists():
        call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture(autouse=True)
def _fresh_rls_state():
    """A test's rollback reverts connection settings; forget what was applied."""
    yield
    connection._opsportal_scope = rls._CLEAN
    connection._opsportal_applied = None if connection.connection is not None else rls._CLEAN


class AppRoleClient(APIClient):
    """An API client whose requests run as the application role on PostgreSQL (RLS applies)."""

    def request(self, **kwargs):
        if not IS_POSTGRES:
            return super().request(**kwargs)
        with connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{settings.DATABASE_APP_ROLE}"')
        try:
            return super().request(**kwargs)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET ROLE")


@pytest.fixture
def tenant(db) -> Tenant:
    return create_tenant(slug="acme", name="Acme")


@pytest.fixture
def other_tenant(db) -> Tenant:
    return create_tenant(slug="globex", name="Globex")


@pytest.fixture
def make_token(db):
    def make(
        tenant: Tenant, role: str = Role.VIEWER, *, expired: bool = False, revoked: bool = False
    ) -> str:
        expires = timezone.now() - timedelta(minutes=1) if expired else None
        token, plaintext = create_api_token(
            tenant=tenant, name=f"t-{role}", role=role, expires_at=expires
        )
        if revoked:
            from apps.tenancy.services import revoke_api_token

            revoke_api_token(token)
        return plaintext

    return make


@pytest.fixture
def api():
    def client(token: str | None = None) -> AppRoleClient:
        c = AppRoleClient()
        if token:
            c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return c

    return client


@pytest.fixture
def worker_queue(monkeypatch):
    """A queue of this test's own, so no other worker on the broker takes its tasks."""
    import uuid

    from opsportal.celery import app as celery_app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(celery_app.conf, "task_default_queue", queue)
    return queue


@pytest.fixture
def admin_client_for(django_user_model):
    """A logged-in Django test client of a superuser who is tenant_admin of `tenant`."""
    from django.test import Client

    from apps.tenancy.services import add_member

    def make(tenant: Tenant) -> Client:
        user = django_user_model.objects.filter(username="root").first()
        if user is None:
            user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
        add_member(tenant=tenant, user=user, role=Role.TENANT_ADMIN)
        client = Client()
        client.force_login(user)
        return client

    return make
