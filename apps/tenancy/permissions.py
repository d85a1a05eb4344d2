"""Role checks. A view declares `required_roles` per HTTP method (or for all methods); a view that
declares nothing is closed. `tenant_admin` passes every check within its tenant."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.tenancy.roles import Role
from apps.tenancy.selectors import role_in_tenant


def required_roles_for(view, method: str) -> frozenset[str]:
    declared = getattr(view, "required_roles", None)
    if declared is None:
        return frozenset()
    if isinstance(declared, dict):
        key = "SAFE" if method in SAFE_METHODS and "SAFE" in declared else method
        return frozenset(declared.get(key, ()))
    return frozenset(declared)


class HasTenantRole(BasePermission):
    message = "Your role in this tenant does not allow this action."

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        role = getattr(request._request, "tenant_role", None)
        if role is None and getattr(request.user, "pk", None):
            from apps.tenancy.middleware import act_as_user

            act_as_user(request, request.user)
            tenant, role = role_in_tenant(request.user, request._request)
            request._request.tenant = tenant
            request._request.tenant_role = role
        if role is None or getattr(request._request, "tenant", None) is None:
            return False
        needed = required_roles_for(view, request.method)
        return role == Role.TENANT_ADMIN or role in needed
