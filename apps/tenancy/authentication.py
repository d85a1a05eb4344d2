"""`Authorization: Bearer ops_<prefix>_<secret>` for the API.

The prefix finds the row (one statement, without widening the database scope: see
`selectors.api_token_by_prefix`); the secret is compared by SHA-256 in constant time. Expired and
revoked tokens get 401. On success the request carries the tenant, the role and the database
scope.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from apps.tenancy import rls
from apps.tenancy.models import ApiToken
from apps.tenancy.selectors import api_token_by_prefix
from opsportal.client_ip import client_ip
from opsportal.context import Actor, _actor

TOKEN_PREFIX = "ops_"  # noqa: S105  (a public marker, not a secret)
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(raw: str, marker: str = TOKEN_PREFIX) -> tuple[str, str] | None:
    """(prefix, secret) of `<marker><prefix>_<secret>`: API tokens, and flags' environment keys."""
    if not raw.startswith(marker):
        return None
    prefix, _, secret = raw[len(marker) :].partition("_")
    if not prefix or not secret:
        return None
    return prefix, secret


class TokenUser(AnonymousUser):
    """The request.user of a token request: not a Django user, but authenticated."""

    def __init__(self, token: ApiToken):
        self.token = token

    @property
    def is_authenticated(self) -> bool:
        return True

    def __str__(self) -> str:
        return f"token:{self.token.name}"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        parsed = parse_token(raw.strip())
        if parsed is None:
            raise exceptions.AuthenticationFailed("Malformed bearer token.")
        prefix, secret = parsed
        token = api_token_by_prefix(prefix)
        if token is None or not hmac.compare_digest(token.secret_hash, hash_secret(secret)):
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Token has been revoked.")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("Token has expired.")
        rls.set_request_scope(str(token.tenant_id), all_tenants=False)
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            # A plain column update, not an audited change: usage is not a state change.
            ApiToken._base_manager.filter(pk=token.pk).update(last_used_at=now)
        request._request.tenant = token.tenant
        request._request.tenant_role = token.role
        _actor.set(Actor(token_id=token.pk, label=f"token:{token.name}", ip=client_ip(request)))
        return TokenUser(token), token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="opsportal"'
