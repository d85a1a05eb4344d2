"""Reads about tenants and memberships."""

from __future__ import annotations

from apps.tenancy import rls
from apps.tenancy.models import Membership, Tenant
from apps.tenancy.roles import Role

SESSION_KEY = "opsportal_tenant_id"


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
