"""The acknowledge-link page: GET shows what will be acknowledged, the button POSTs.

No session is needed: the signed token is the authorisation, and it is single-use. The lookup
runs across tenants (the token names the alert), then everything else in the alert's tenant.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from apps.alerts import links, services
from apps.tenancy.rls import all_tenants_context, tenant_context
from opsportal.context import Actor, acting_as


@require_http_methods(["GET", "POST"])
def ack_link(request: HttpRequest, token: str) -> HttpResponse:
    with all_tenants_context():
        try:
            link = links.read(token)
        except links.LinkError as exc:
            return _page(request, exc.status, str(exc))
        alert = link.alert
        if request.method == "GET":
            if link.used:
                return _page(request, 409, "This acknowledge link has already been used.", alert)
            return _page(request, 200, "", alert, confirm=True)
        with tenant_context(alert.tenant_id), acting_as(Actor(label="ack link")):
            try:
                alert = services.acknowledge_by_link(token)
            except links.LinkError as exc:
                return _page(request, exc.status, str(exc), alert)
            except services.InvalidTransition as exc:
                return _page(request, 409, str(exc), alert)
    if alert.status == "resolved":
        return _page(request, 200, "This alert is already resolved; nothing to acknowledge.", alert)
    return _page(request, 200, "Acknowledged. Escalation and repeats are stopped.", alert)


def _page(request, status: int, message: str, alert=None, confirm: bool = False) -> HttpResponse:
    return render(
        request,
        "alerts/ack.html",
        {"message": message, "alert": alert, "confirm": confirm, "ok": status < 400},
        status=status,
    )
