from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.tenancy.middleware import ALL_TENANTS
from apps.tenancy.selectors import SESSION_KEY, tenants_of


@require_POST
@staff_member_required
def switch_tenant(request):
    """Switch the admin's active tenant (superusers may also choose all tenants)."""
    wanted = request.POST.get("tenant", "")
    if wanted == ALL_TENANTS and request.user.is_superuser:
        request.session[SESSION_KEY] = ALL_TENANTS
    else:
        allowed = {str(t.pk): t.pk for t in tenants_of(request.user)}
        if wanted not in allowed:
            return HttpResponseBadRequest("Unknown tenant.")
        request.session[SESSION_KEY] = allowed[wanted]
    target = request.POST.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
        target = "/admin/"
    return HttpResponseRedirect(target)
