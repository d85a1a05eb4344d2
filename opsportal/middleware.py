"""Cross-cutting middleware: request id, Prometheus metrics, body limit, problem documents."""

from __future__ import annotations

import re
import time

from csp.middleware import CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.http import HttpRequest, HttpResponse

from opsportal import metrics
from opsportal.api.problems import is_api_path, problem_response
from opsportal.context import new_request_id, reset_request_id, set_request_id

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIDMiddleware:
    """Accept a sane X-Request-ID or make one; echo it and expose it to logs, tasks and audit."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # META, not request.headers: building the headers mapping costs more than the rest here.
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id
        token = set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response["X-Request-ID"] = request_id
        return response


class MetricsMiddleware:
    """Request count and latency histogram per route name, method and status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or match.route) if match else "unmatched"
        metrics.observe_request(
            route, request.method, response.status_code, time.perf_counter() - started
        )
        return response


class BodySizeLimitMiddleware:
    """Reject bodies above REQUEST_BODY_LIMIT_BYTES with 413 before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(400, "Invalid Content-Length header.")
        if length > settings.REQUEST_BODY_LIMIT_BYTES:
            return problem_response(
                413,
                f"Request body of {length} bytes exceeds the limit of "
                f"{settings.REQUEST_BODY_LIMIT_BYTES} bytes.",
            )
        return self.get_response(request)


class ProblemDocumentMiddleware:
    """Turn any non-JSON error response on machine paths into an RFC 9457 problem document.

    DRF views already answer with problem documents; this catches what happens outside them
    (unknown URLs, 405 from plain views, errors raised by middleware further in).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not is_api_path(request.path):
            return response
        if getattr(response, "ofrep_raw", False):  # OFREP's own error format (apps/flags/ofrep.py)
            return response
        content_type = response.get("Content-Type", "")
        if "json" in content_type:
            return response
        problem = problem_response(response.status_code)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                problem[header] = response[header]
        return problem


class AdminOnlyMessageMiddleware(MessageMiddleware):
    """Django's messages framework, set up only where it is used: the admin pages."""

    def process_request(self, request):
        if request.path_info.startswith("/admin/"):
            super().process_request(request)

    def process_response(self, request, response):
        if hasattr(request, "_messages"):
            return super().process_response(request, response)
        return response


class StaticCSPMiddleware(CSPMiddleware):
    """django-csp with the header built once.

    The portal's policy is static (no nonces, no per-view overrides), so rebuilding it for every
    response was the most expensive middleware on the request floor (docs/performance.md).
    Responses that do carry per-view CSP settings or a nonce still get django-csp's full path.
    """

    _PER_RESPONSE = ("_csp_exempt", "_csp_config", "_csp_update", "_csp_replace")
    _header: str | None = None

    def process_response(self, request, response):
        if any(hasattr(response, name) for name in self._PER_RESPONSE) or getattr(
            request, "_csp_nonce", None
        ):
            return super().process_response(request, response)
        if "Content-Security-Policy" not in response:
            if StaticCSPMiddleware._header is None:
                StaticCSPMiddleware._header = build_policy()
            response["Content-Security-Policy"] = StaticCSPMiddleware._header
        return response
