"""Turn a decoded compliance-run body into normalized findings.

`parse_run(content_type, data)` picks the format by media type and returns a ParsedRun, or
raises RunFormatError (with field paths), TooManyResults or UnsupportedFormat. Pure Python: no
Django models and no database, so the calling service owns storage and transactions.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .conftest_json import parse_conftest
from .findings import (
    PASS,
    VIOLATION,
    Finding,
    ParsedRun,
    RunFormatError,
    TooManyResults,
)
from .fingerprint import fingerprint, normalize_message
from .mapping import RuleMapper, validate_pattern
from .native import parse_native
from .sarif import parse_sarif

NATIVE_CONTENT_TYPE = "application/vnd.opsportal.run+json"
SARIF_CONTENT_TYPE = "application/sarif+json"
CONFTEST_CONTENT_TYPE = "application/vnd.conftest+json"
SUPPORTED_CONTENT_TYPES = (
    "application/json",
    NATIVE_CONTENT_TYPE,
    SARIF_CONTENT_TYPE,
    CONFTEST_CONTENT_TYPE,
)
DEFAULT_MAX_RESULTS = 100_000

_PARSERS = {
    "application/json": parse_native,
    NATIVE_CONTENT_TYPE: parse_native,
    SARIF_CONTENT_TYPE: parse_sarif,
    CONFTEST_CONTENT_TYPE: parse_conftest,
}


class UnsupportedFormat(Exception):
    """The Content-Type names no format this module reads."""

    def __init__(self, content_type: str | None) -> None:
        self.content_type = content_type
        self.supported = SUPPORTED_CONTENT_TYPES
        super().__init__(
            f"unsupported content type {content_type!r}; "
            f"supported: {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )


def media_type(content_type: str | None) -> str:
    """`Application/SARIF+json; charset=utf-8` -> `application/sarif+json`."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def parse_run(
    content_type: str | None, data: Any, *, max_results: int = DEFAULT_MAX_RESULTS
) -> ParsedRun:
    """Parse a decoded body in the format its Content-Type names.

    Raises UnsupportedFormat, TooManyResults (before parsing, from a count of the results) or
    RunFormatError (after collecting up to MAX_ERRORS problems with their field paths).
    """
    parser = _PARSERS.get(media_type(content_type))
    if parser is None:
        raise UnsupportedFormat(content_type)
    with gc_paused():
        return parser(data, max_results=max_results)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while many objects are built.

    A 100,000-result body is about a million live containers; creating 100,000 findings
    triggers full collections that walk all of them, which costs more than the parsing itself
    (0.2-0.3 s to parse vs. up to 1 s with collections, on a 2-core dev machine). `json.loads`
    of such a body suffers the same way, so callers may wrap that in it too. Parsing makes no
    reference cycles: reference counting still frees everything meanwhile.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


__all__ = [
    "CONFTEST_CONTENT_TYPE",
    "DEFAULT_MAX_RESULTS",
    "NATIVE_CONTENT_TYPE",
    "PASS",
    "SARIF_CONTENT_TYPE",
    "SUPPORTED_CONTENT_TYPES",
    "VIOLATION",
    "Finding",
    "ParsedRun",
    "RuleMapper",
    "RunFormatError",
    "TooManyResults",
    "UnsupportedFormat",
    "fingerprint",
    "gc_paused",
    "media_type",
    "normalize_message",
    "parse_run",
    "validate_pattern",
]
