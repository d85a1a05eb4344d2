"""Normalized findings and the errors the format parsers raise.

Nothing here touches Django or a database: the parsers take an already decoded JSON body and
return plain objects, so the service that stores them decides about transactions and tenancy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

PASS = "PASS"  # noqa: S105  (a status, not a password)
VIOLATION = "VIOLATION"

MAX_MESSAGE_LENGTH = 2_000
MAX_LINE = 2_147_483_647  # the database column is a 32-bit integer
MAX_PATH_LENGTH = 1_000
MAX_ERRORS = 20
# Error path for a problem with the document as a whole (not an object, not an array, ...).
ROOT_PATH = "$"


@dataclass(slots=True)
class Finding:
    status: str  # PASS | VIOLATION
    rule_id: str | None  # catalog id ("R07") when the format names it directly, else None
    tool_rule: str  # the tool's own rule id (SARIF ruleId) or Conftest namespace; "" for native
    file_path: str  # no leading "./", no "file://" scheme; "" if none
    line: int | None
    message: str  # at most MAX_MESSAGE_LENGTH characters
    context: dict[str, Any]  # small dict of format-specific extras
    suppressed: bool = False


@dataclass(slots=True)
class ParsedRun:
    findings: list[Finding]
    tool: str | None = None
    commit_sha: str | None = None
    repository: str | None = None
    pull_request: int | None = None


class RunFormatError(Exception):
    """The body does not have the shape its content type promises.

    `errors` maps a field path such as `runs[0].results[3].ruleId` (or `$` for the document
    itself) to its messages. Parsing stops after MAX_ERRORS messages; `truncated` says so.
    """

    def __init__(self, errors: dict[str, list[str]], *, truncated: bool = False) -> None:
        self.errors = errors
        self.truncated = truncated
        super().__init__(self._summary())

    def _summary(self) -> str:
        if not self.errors:
            return "invalid run document"
        path, messages = next(iter(self.errors.items()))
        total = sum(len(m) for m in self.errors.values())
        text = f"{path}: {messages[0]}"
        if total > 1:
            text += f" (and {total - 1} more error{'s' if total > 2 else ''}"
            text += f", stopped after {MAX_ERRORS})" if self.truncated else ")"
        return text


class TooManyResults(Exception):
    """The document holds more results than the caller allows.

    `count` is the number of results in the document (counted before any is parsed).
    """

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(f"the run has {count} results; at most {limit} are accepted")


class ErrorCollector:
    """Collects validation errors by path, raising once MAX_ERRORS have been seen."""

    __slots__ = ("count", "errors")

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}
        self.count = 0

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)
        self.count += 1
        if self.count >= MAX_ERRORS:
            raise RunFormatError(self.errors, truncated=True)

    def fail(self, path: str, message: str) -> RunFormatError:
        """Record a fatal error and return the exception for the caller to raise."""
        self.errors.setdefault(path, []).append(message)
        self.count += 1
        return RunFormatError(self.errors, truncated=self.count >= MAX_ERRORS)

    def raise_if_any(self) -> None:
        if self.errors:
            raise RunFormatError(self.errors)


def describe(value: Any) -> str:
    """A short description of a wrong value for an error message (never the whole value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_catalog_id(value: str) -> bool:
    """`^R\\d{2}$` with ASCII digits only, without a regex (it runs once per result)."""
    return len(value) == 3 and value[0] == "R" and "0" <= value[1] <= "9" and "0" <= value[2] <= "9"


def normalize_path(path: str) -> str:
    """Drop a `file://` scheme (URL-decoding what follows) and any leading `./`.

    Only a file URI is URL-decoded: a plain path may legitimately contain `%`.
    """
    if path.startswith("file:"):
        path = file_uri_to_path(path)
    while path.startswith("./"):
        path = path[2:]
    return path


def file_uri_to_path(uri: str) -> str:
    rest = uri[5:]
    if rest.startswith("//"):
        rest = rest[2:]
        if rest.startswith("localhost/"):
            rest = rest[9:]
        elif not rest.startswith("/"):
            rest = "//" + rest  # a UNC host: keep it visible rather than guess
    path = unquote(rest)
    # file:///C:/src/app.py -> C:/src/app.py
    if len(path) >= 3 and path[0] == "/" and path[2] == ":" and path[1].isalpha():
        path = path[1:]
    return path


def truncate_message(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_LENGTH else message[:MAX_MESSAGE_LENGTH]
