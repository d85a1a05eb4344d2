"""Problem documents (RFC 9457) for every error the API can return.

Body: {"type", "title", "status", "detail", "errors"}; media type application/problem+json.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
MACHINE_PATH_PREFIXES = ("/api/", "/ofrep/", "/healthz", "/readyz", "/metrics")
TYPE_BASE = "https://opsportal.dev/problems/"


def is_api_path(path: str) -> bool:
    return path.startswith(MACHINE_PATH_PREFIXES)


def problem_body(status_code: int, detail: str | None = None, errors: Any = None) -> dict:
    phrase = HTTPStatus(status_code).phrase
    return {
        "type": TYPE_BASE + phrase.lower().replace(" ", "-").replace("'", ""),
        "title": phrase,
        "status": status_code,
        "detail": detail or phrase,
        "errors": errors or {},
    }


def problem_response(
    status_code: int, detail: str | None = None, errors: Any = None, headers: dict | None = None
) -> HttpResponse:
    response = HttpResponse(
        json.dumps(problem_body(status_code, detail, errors)),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource changed since you read it."
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "If-Match does not match the current version."
    default_code = "precondition_failed"


class PreconditionRequired(exceptions.APIException):
    status_code = 428
    default_detail = "Send the current `version` in the body or an `If-Match` ETag."
    default_code = "precondition_required"


class UnprocessableEntity(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request is well-formed but cannot be processed."
    default_code = "unprocessable"


def unprocessable(exc) -> UnprocessableEntity:
    """A Django ValidationError raised by a service, as a 422 naming each field."""
    return UnprocessableEntity(
        {field: list(messages) for field, messages in exc.message_dict.items()}
    )


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A dependency is unavailable; retry later."
    default_code = "unavailable"


def _flatten_detail(detail: Any) -> tuple[str, Any]:
    """Split DRF's detail into a one-line summary and a field → messages map."""
    if isinstance(detail, dict):
        errors = {
            key: [str(m) for m in (v if isinstance(v, list) else [v])] for key, v in detail.items()
        }
        first_field, messages = next(iter(errors.items()), ("", [""]))
        summary = (
            f"{first_field}: {messages[0]}" if first_field != "non_field_errors" else messages[0]
        )
        return f"Invalid input ({summary}).", errors
    if isinstance(detail, list):
        messages = [str(m) for m in detail]
        return "; ".join(messages), {"non_field_errors": messages}
    return str(detail), {}


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.APIException(str(exc))
        exc.status_code = 413
    elif isinstance(exc, ValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        response = Response(status=500)
        detail, errors = "An unexpected error occurred; it has been logged.", {}
    else:
        detail, errors = _flatten_detail(getattr(exc, "detail", response.data))
    if response.status_code == 503 and "Retry-After" not in response:
        response["Retry-After"] = str(getattr(exc, "retry_after", 30))
    response.data = problem_body(response.status_code, detail, errors)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response
