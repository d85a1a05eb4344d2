"""The portal's own run format (`application/json`, `application/vnd.opsportal.run+json`).

    {"repository": "owner/name", "pull_request": 12, "commit_sha": "<7-64 hex>",
     "tool": "custom", "results": [{"rule_id": "R01", "status": "PASS", "file_path": "a.py",
     "line": 3, "message": "...", "context": {...}}]}

Types are checked strictly (a bool is not a line number, "pass" is not a status). Keys the
format does not define are ignored, so clients can send extra data without breaking.
"""

from __future__ import annotations

import re
from typing import Any

from .findings import (
    MAX_LINE,
    MAX_MESSAGE_LENGTH,
    MAX_PATH_LENGTH,
    PASS,
    ROOT_PATH,
    VIOLATION,
    ErrorCollector,
    Finding,
    ParsedRun,
    TooManyResults,
    describe,
    is_catalog_id,
    normalize_path,
)

REPOSITORY_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", re.ASCII)
COMMIT_SHA_RE = re.compile(r"[0-9a-fA-F]{7,64}", re.ASCII)
MAX_TOOL_LENGTH = 100


def parse_native(data: Any, *, max_results: int) -> ParsedRun:
    errors = ErrorCollector()
    if not isinstance(data, dict):
        raise errors.fail(ROOT_PATH, f"must be a JSON object, got {describe(data)}")

    repository = _repository(data.get("repository"), errors)
    pull_request = _pull_request(data.get("pull_request"), errors)
    commit_sha = _commit_sha(data.get("commit_sha"), errors)
    tool = _tool(data.get("tool"), errors)

    results = data.get("results")
    findings: list[Finding] = []
    if results is None:
        errors.add("results", "is required: a list of results")
    elif not isinstance(results, list):
        errors.add("results", f"must be a list, got {describe(results)}")
    else:
        if len(results) > max_results:
            raise TooManyResults(len(results), max_results)
        findings = _results(results, errors)

    errors.raise_if_any()
    return ParsedRun(
        findings=findings,
        tool=tool,
        commit_sha=commit_sha,
        repository=repository,
        pull_request=pull_request,
    )


def _results(results: list[Any], errors: ErrorCollector) -> list[Finding]:
    findings: list[Finding] = []
    append = findings.append
    # A run repeats a few rule ids and paths many times: check or normalize each once.
    known_ids: set[str] = set()
    path_cache: dict[str, str] = {}
    for i, result in enumerate(results):
        if not isinstance(result, dict):
            errors.add(f"results[{i}]", f"must be an object, got {describe(result)}")
            continue
        ok = True

        rule_id = result.get("rule_id")
        if type(rule_id) is not str or rule_id not in known_ids:
            if isinstance(rule_id, str) and is_catalog_id(rule_id):
                known_ids.add(rule_id)
            else:
                message = (
                    "is required"
                    if rule_id is None
                    else f'must look like "R07" (R and two digits), got {describe(rule_id)}'
                )
                errors.add(f"results[{i}].rule_id", message)
                ok = False

        status = result.get("status")
        if status != PASS and status != VIOLATION:
            message = (
                "is required"
                if status is None
                else f'must be "PASS" or "VIOLATION", got {describe(status)}'
            )
            errors.add(f"results[{i}].status", message)
            ok = False

        file_path = result.get("file_path")
        if file_path is None:
            file_path = ""
        elif not isinstance(file_path, str):
            errors.add(f"results[{i}].file_path", f"must be a string, got {describe(file_path)}")
            ok = False
        elif len(file_path) > MAX_PATH_LENGTH:
            errors.add(f"results[{i}].file_path", f"must be at most {MAX_PATH_LENGTH} characters")
            ok = False
        elif file_path.startswith(("./", "file:")):
            normalized = path_cache.get(file_path)
            if normalized is None:
                normalized = path_cache[file_path] = normalize_path(file_path)
            file_path = normalized

        line = result.get("line")
        if line is not None and (type(line) is not int or not 1 <= line <= MAX_LINE):
            errors.add(
                f"results[{i}].line",
                f"must be an integer from 1 to {MAX_LINE}, got {describe(line)}",
            )
            ok = False

        message = result.get("message")
        if message is None:
            message = ""
        elif not isinstance(message, str):
            errors.add(f"results[{i}].message", f"must be a string, got {describe(message)}")
            ok = False
        elif len(message) > MAX_MESSAGE_LENGTH:
            message = message[:MAX_MESSAGE_LENGTH]

        context = result.get("context")
        if context is None:
            context = {}
        elif not isinstance(context, dict):
            errors.add(f"results[{i}].context", f"must be an object, got {describe(context)}")
            ok = False

        if ok:
            append(Finding(status, rule_id, "", file_path, line, message, context))
    return findings


def _repository(value: Any, errors: ErrorCollector) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not REPOSITORY_RE.fullmatch(value):
        errors.add("repository", f'must look like "owner/name", got {describe(value)}')
        return None
    return value


def _pull_request(value: Any, errors: ErrorCollector) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 1:
        errors.add("pull_request", f"must be an integer >= 1, got {describe(value)}")
        return None
    return value


def _commit_sha(value: Any, errors: ErrorCollector) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not COMMIT_SHA_RE.fullmatch(value):
        errors.add("commit_sha", f"must be 7 to 64 hexadecimal digits, got {describe(value)}")
        return None
    return value.lower()


def _tool(value: Any, errors: ErrorCollector) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TOOL_LENGTH:
        errors.add("tool", f"must be a string of 1 to {MAX_TOOL_LENGTH} characters")
        return None
    return value
