"""Throttling per principal: the API token if there is one, else the user, else the client IP."""

from rest_framework.throttling import SimpleRateThrottle


class PrincipalRateThrottle(SimpleRateThrottle):
    scope = "principal"

    def __init__(self):
        """The rate depends on the view's scope, so it is resolved in allow_request."""

    def get_rate(self):
        view_scope = getattr(self.view, "throttle_scope", None)
        rates = self.THROTTLE_RATES
        if view_scope and view_scope in rates:
            return rates[view_scope]
        return rates[self.scope]

    def allow_request(self, request, view):
        self.view = view
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        token = getattr(request, "auth", None)
        if token is not None and getattr(token, "pk", None):
            ident = f"token:{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        scope = getattr(view, "throttle_scope", None) or self.scope
        return f"throttle:{scope}:{ident}"
