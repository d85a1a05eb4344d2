"""Maintenance mode for services that use the portal: a 503 page while a flag is on.

A client Django app adds `opsportal.contrib.maintenance.MaintenanceModeMiddleware` to
MIDDLEWARE (early: right after SecurityMiddleware). Each request that is not exempt reads a
boolean flag through OpenFeature, so any provider works; with the OFREP provider it reads the
portal. While the flag is on, the request is answered with 503, `Retry-After` and
`Cache-Control: no-store`: an HTML page, or an RFC 9457 problem document for clients that ask
for JSON. The evaluation context has the targeting key "maintenance" and the attributes `path`
and `host`, so ordinary rules can put one host or one part of the site into maintenance.

This module depends only on Django and the OpenFeature SDK.

Settings, all optional:
- OPSPORTAL_MAINTENANCE_FLAG: the flag key. Default "maintenance-mode".
- OPSPORTAL_MAINTENANCE_CLIENT_DOMAIN: the OpenFeature domain whose provider answers. Default
  None (the default provider).
- OPSPORTAL_MAINTENANCE_RETRY_AFTER: seconds for `Retry-After`. Default 300.
- OPSPORTAL_MAINTENANCE_EXEMPT_PATHS: path prefixes (without the script prefix) that are always
  served and never evaluated. Default ("/healthz", "/readyz", "/static/").
- OPSPORTAL_MAINTENANCE_CACHE_SECONDS: how long one answer, per host and path, is reused in this
  process, so a busy app does not make a remote call per request. Default 5; 0 disables.
- OPSPORTAL_MAINTENANCE_TEMPLATE: a template name for the HTML page, rendered with
  `retry_after` (seconds) in its context. Default None: a built-in self-contained page.
- OPSPORTAL_MAINTENANCE_FAIL_OPEN: what to do when the flag cannot be evaluated (provider error,
  timeout, flag not found). Default True: serve normally and log a warning at most once per
  cache period (at least one second). False: answer 503.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

logger = logging.getLogger(__name__)

TARGETING_KEY = "maintenance"
DEFAULT_EXEMPT_PATHS = ("/healthz", "/readyz", "/static/")
MAX_CACHED_ANSWERS = 1024
PROBLEM = {
    "type": "about:blank",
    "title": "Service Unavailable",
    "status": 503,
    "detail": "Down for maintenance; retry later.",
}
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Down for maintenance</title>
</head>
<body>
<main>
<h1>Down for maintenance</h1>
<p>This service is down for scheduled maintenance. Nothing is wrong on your side.</p>
<p>Please try again {when}.</p>
</main>
</body>
</html>
"""

clock: Callable[[], float] = time.monotonic


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, f"OPSPORTAL_MAINTENANCE_{name}", default)


def _number(name: str, default: float) -> float:
    value = _setting(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ImproperlyConfigured(
            f"OPSPORTAL_MAINTENANCE_{name} must be a number of seconds, not {value!r}."
        )
    return value


def _when(seconds: int) -> str:
    if seconds < 90:
        return "in a minute or so"
    return f"in about {round(seconds / 60)} minutes"


class MaintenanceModeMiddleware:
    """Answers 503 while the maintenance flag is on for the request's host and path."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.flag: str = _setting("FLAG", "maintenance-mode")
        self.domain: str | None = _setting("CLIENT_DOMAIN", None)
        self.retry_after = int(_number("RETRY_AFTER", 300))
        self.cache_seconds = float(_number("CACHE_SECONDS", 5))
        self.fail_open = bool(_setting("FAIL_OPEN", True))
        self.template: str | None = _setting("TEMPLATE", None)
        exempt: Iterable[str] = _setting("EXEMPT_PATHS", DEFAULT_EXEMPT_PATHS)
        if isinstance(exempt, str):
            raise ImproperlyConfigured("OPSPORTAL_MAINTENANCE_EXEMPT_PATHS must be a sequence.")
        self.exempt_paths = tuple(exempt)
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[str, str], tuple[float, bool | None]] = OrderedDict()
        self._warn_after = float("-inf")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.exempt_paths):
            return self.get_response(request)
        on = self._answer(request)
        if on is None:
            on = not self.fail_open
        if on:
            return self._unavailable(request)
        return self.get_response(request)

    def _answer(self, request: HttpRequest) -> bool | None:
        """True or False, or None when the flag could not be evaluated; cached per host+path."""
        key = (request.get_host(), request.path)
        now = clock()
        if self.cache_seconds > 0:
            with self._lock:
                cached = self._answers.get(key)
                if cached is not None and cached[0] > now:
                    return cached[1]
        answer = self._evaluate(*key)
        if self.cache_seconds > 0:
            with self._lock:
                self._answers[key] = (now + self.cache_seconds, answer)
                self._answers.move_to_end(key)
                while len(self._answers) > MAX_CACHED_ANSWERS:
                    self._answers.popitem(last=False)
        return answer

    def _evaluate(self, host: str, path: str) -> bool | None:
        context = EvaluationContext(
            targeting_key=TARGETING_KEY, attributes={"path": path, "host": host}
        )
        try:
            details = api.get_client(self.domain).get_boolean_details(self.flag, False, context)
        except Exception as exc:  # the SDK catches provider errors; this guards hooks and bugs
            self._warn("%s: %s", type(exc).__name__, exc)
            return None
        if details.error_code is not None:
            self._warn("%s: %s", details.error_code, details.error_message or "")
            return None
        return bool(details.value)

    def _warn(self, message: str, *args: object) -> None:
        now = clock()
        with self._lock:
            if now < self._warn_after:
                return
            self._warn_after = now + max(self.cache_seconds, 1.0)
        logger.warning(
            "maintenance flag %r could not be evaluated (%s): " + message,
            self.flag,
            "serving normally" if self.fail_open else "answering 503",
            *args,
        )

    def _unavailable(self, request: HttpRequest) -> HttpResponse:
        accept = request.headers.get("Accept", "")
        wants_json = "application/json" in accept or "application/problem+json" in accept
        if wants_json and "text/html" not in accept:
            response = HttpResponse(
                json.dumps(PROBLEM), status=503, content_type="application/problem+json"
            )
        else:
            if self.template:
                body = render_to_string(
                    self.template, {"retry_after": self.retry_after}, request=request
                )
            else:
                body = PAGE.format(when=_when(self.retry_after))
            response = HttpResponse(body, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(self.retry_after)
        response["Cache-Control"] = "no-store"
        return response
