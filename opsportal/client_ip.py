"""The client's IP address, honouring exactly TRUSTED_PROXY_COUNT reverse proxies.

X-Forwarded-For is only believed for the hops our own proxies added; with no proxy configured it
is ignored, so a client cannot choose the address that throttling, lockout and audit record.
"""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR")


def axes_client_ip(request, *args, **kwargs) -> str | None:
    return client_ip(request)
