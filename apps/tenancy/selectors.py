"""Reads about tenants and memberships."""

from __future__ import annotations

import logging
from functools import cache

import psycopg
from django.db import ProgrammingError, connections, router

from apps.tenancy import rls
from apps.tenancy.models import ApiToken, Membership, Tenant
from apps.tenancy.roles import Role

SESSION_KEY = "opsportal_tenant_id"
logger = logging.getLogger(__name__)


def tenants_of(user) -> list[Tenant]:
    """Tenants the user may act in (all of them for superusers)."""
    with rls.all_tenants_context():
        if user.is_superuser:
            return list(Tenant.objects.order_by("slug"))
        return list(
            Tenant.objects.filter(
                pk__in=Membership.objects.filter(user=user).values("tenant_id")
            ).order_by("slug")
        )


def role_in_tenant(user, http_request) -> tuple[Tenant | None, str | None]:
    """The session's active tenant for a browser user, and the user's role in it."""
    tenants = tenants_of(user)
    if not tenants:
        return None, None
    wanted = http_request.session.get(SESSION_KEY) if hasattr(http_request, "session") else None
    tenant = next((t for t in tenants if t.pk == wanted), tenants[0])
    if user.is_superuser:
        role = Role.TENANT_ADMIN
    else:
        with rls.all_tenants_context():
            role = (
                Membership.objects.filter(user=user, tenant=tenant)
                .values_list("role", flat=True)
                .first()
            )
    rls.set_request_scope(str(tenant.pk), all_tenants=False)
    return tenant, role


def displayed_tenant(request):
    """The tenant an admin page shows: the active one, or, for a superuser looking at "all
    tenants", the first tenant they may act in (pages that show one tenant's figures)."""
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        tenant = next(iter(getattr(request, "available_tenants", None) or []), None)
    return tenant


def same_person(user_id: int | None, token_id: int | None, actor) -> bool:
    """Four eyes: whether `actor` is the person behind a request made by `user_id` / `token_id`.
    The same user, the same API token, a token that user created, or the user who created the
    requesting token all count as the same person."""
    from apps.tenancy.models import ApiToken

    def creator(token: int | None) -> int | None:
        if token is None:
            return None
        with rls.all_tenants_context():
            return ApiToken.objects.filter(pk=token).values_list("created_by_id", flat=True).first()

    if actor.token_id is not None and actor.token_id == token_id:
        return True
    requester = {user_id, creator(token_id)} - {None}
    acting = {actor.user_id, creator(actor.token_id)} - {None}
    return bool(requester & acting)


def has_role_in_active_tenant(user, request, roles) -> bool:
    """A superuser, or a member of the admin's active tenant with one of `roles`."""
    if user.is_superuser:
        return True
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        return False
    with rls.all_tenants_context():
        return Membership.objects.filter(user=user, tenant=tenant, role__in=roles).exists()


def api_token_by_prefix(prefix: str) -> ApiToken | None:
    """The token with this prefix and its tenant, before any tenant scope is set.

    On PostgreSQL one statement through `opsportal_api_token` (a SECURITY DEFINER lookup, see
    tenancy migration 0003), so authenticating never widens the connection's scope to all
    tenants. Elsewhere (SQLite, no row-level security) the ORM.
    """
    alias = router.db_for_read(ApiToken)
    connection = connections[alias]
    if not rls.is_postgres(connection):
        return ApiToken.objects.select_related("tenant").filter(prefix=prefix).first()
    try:
        return _api_token_through_function(connection, alias, prefix)
    except ProgrammingError as exc:
        # Inside a transaction the failed statement has aborted it: nothing can follow.
        missing = isinstance(exc.__cause__, psycopg.errors.UndefinedFunction)
        if not missing or connection.in_atomic_block:
            raise
    # Migrated backwards past tenancy 0003 while this code still runs (a rollback in progress):
    # the scope switch the function replaced, so logins keep working until the code is rolled back.
    logger.warning("%s() is missing; token looked up across all tenants", rls.TOKEN_LOOKUP)
    with rls.all_tenants_context():
        return ApiToken.objects.select_related("tenant").filter(prefix=prefix).first()


@cache
def _token_lookup_statement(alias: str) -> tuple[str, list[str], list[str]]:
    """The lookup's SQL and the two models' column names, built once per process."""
    quote = connections[alias].ops.quote_name
    token_fields = [f.attname for f in ApiToken._meta.concrete_fields]
    tenant_fields = [f.attname for f in Tenant._meta.concrete_fields]
    columns = ", ".join(
        [f"k.{quote(a)}" for a in token_fields] + [f"t.{quote(a)}" for a in tenant_fields]
    )
    sql = (
        f"SELECT {columns} FROM {rls.TOKEN_LOOKUP}(%s) k "  # noqa: S608  (names from _meta)
        f"JOIN {Tenant._meta.db_table} t ON t.id = k.tenant_id"
    )
    return sql, token_fields, tenant_fields


def _api_token_through_function(connection, alias: str, prefix: str) -> ApiToken | None:
    sql, token_fields, tenant_fields = _token_lookup_statement(alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    token = ApiToken.from_db(alias, token_fields, row[: len(token_fields)])
    token.tenant = Tenant.from_db(alias, tenant_fields, row[len(token_fields) :])
    return token
