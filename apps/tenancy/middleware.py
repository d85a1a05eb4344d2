"""Database scope for browser requests, and a guaranteed reset after every request.

Admin pages run with the session's active tenant; a superuser who picked "all tenants" sees all.
Whatever scope a request set (here, or in the API's token authentication) is cleared at the end,
so a reused connection never carries a tenant into the next request.
"""

from apps.tenancy import rls
from apps.tenancy.selectors import SESSION_KEY, tenants_of
from opsportal.client_ip import client_ip
from opsportal.context import Actor, _actor

ALL_TENANTS = "all"


def act_as_user(request, user) -> None:
    """Make a logged-in browser user the actor of everything audited in this request."""
    _actor.set(Actor(user_id=user.pk, label=user.get_username(), ip=client_ip(request)))


class AdminTenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        request.tenant_role = None
        reset_actor = _actor.set(None)
        try:
            # Only admin pages are scoped here: API views authenticate (and scope) themselves,
            # and probes like /healthz should not pay for a session lookup.
            user = getattr(request, "user", None) if request.path.startswith("/admin/") else None
            if user is not None and user.is_authenticated:
                act_as_user(request, user)
                self._scope_admin(request, user)
            return self.get_response(request)
        finally:
            _actor.reset(reset_actor)
            rls.clear_scope()

    @staticmethod
    def _scope_admin(request, user) -> None:
        tenants = tenants_of(user)
        request.available_tenants = tenants
        wanted = request.session.get(SESSION_KEY)
        if user.is_superuser and wanted in (None, ALL_TENANTS):
            rls.set_request_scope("", all_tenants=True)
            return
        tenant = next((t for t in tenants if t.pk == wanted), tenants[0] if tenants else None)
        request.tenant = tenant
        rls.set_request_scope(str(tenant.pk) if tenant else "0", all_tenants=False)
