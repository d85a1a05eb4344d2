"""Conftest's `conftest test --output json` (`application/vnd.conftest+json`).

The document is an array with one entry per (file, namespace):

    [{"filename": "deploy.yaml", "namespace": "main", "successes": 3,
      "failures": [{"msg": "...", "metadata": {"query": "data.main.deny", ...},
                    "loc": {"file": "deploy.yaml", "line": 4}}],
      "warnings": [...], "exceptions": [...], "skipped": [...]}]

Conftest omits empty lists and may write `null`; unknown keys (`skipped`, `queries`) are
ignored. A policy that returns an object instead of a string puts its extra keys (say
`rule_id`) in `metadata`. An exception's `msg` is the query that exempted the rule, e.g.
`data.main.exception[_][_] == "run_as_root"`.
"""

from __future__ import annotations

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

TOOL_NAME = "conftest"
# (key, context["conftest"] value, suppressed)
_SECTIONS = (
    ("failures", "failure", False),
    ("warnings", "warning", False),
    ("exceptions", "exception", True),
)
_METADATA_ID_KEYS = ("rule_id", "rule", "id")


def parse_conftest(data: Any, *, max_results: int) -> ParsedRun:
    errors = ErrorCollector()
    if not isinstance(data, list):
        raise errors.fail(
            ROOT_PATH,
            f"must be a JSON array (the output of `conftest test -o json`), got {describe(data)}",
        )
    total = count_results(data)
    if total > max_results:
        raise TooManyResults(total, max_results)

    findings: list[Finding] = []
    append = findings.append
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            errors.add(f"[{i}]", f"must be an object, got {describe(item)}")
            continue

        filename = item.get("filename")
        if filename is None:
            filename = ""
        elif not isinstance(filename, str):
            errors.add(f"[{i}].filename", f"must be a string, got {describe(filename)}")
            filename = ""
        elif len(filename) > MAX_PATH_LENGTH:
            errors.add(f"[{i}].filename", f"must be at most {MAX_PATH_LENGTH} characters")
        else:
            filename = normalize_path(filename)

        namespace = item.get("namespace")
        if namespace is None:
            namespace = ""
        elif not isinstance(namespace, str):
            errors.add(f"[{i}].namespace", f"must be a string, got {describe(namespace)}")
            namespace = ""

        successes = item.get("successes")
        if successes is None:
            successes = 0
        elif type(successes) is not int or successes < 0:
            errors.add(f"[{i}].successes", f"must be an integer >= 0, got {describe(successes)}")
            successes = 0

        for key, kind, suppressed in _SECTIONS:
            entries = item.get(key)
            if entries is None:
                continue
            if not isinstance(entries, list):
                errors.add(f"[{i}].{key}", f"must be a list, got {describe(entries)}")
                continue
            for j, entry in enumerate(entries):
                finding = _entry(entry, f"[{i}].{key}[{j}]", kind, suppressed, errors)
                if finding is not None:
                    finding.tool_rule = namespace
                    finding.file_path = filename
                    append(finding)

        if successes > 0:
            noun = "policy" if successes == 1 else "policies"
            append(
                Finding(
                    PASS,
                    None,
                    namespace,
                    filename,
                    None,
                    f"{successes} {noun} passed",
                    {"successes": successes},
                )
            )

    errors.raise_if_any()
    return ParsedRun(findings=findings, tool=TOOL_NAME)


def count_results(data: list[Any]) -> int:
    """Findings the document will produce: each failure, warning and exception, plus one PASS
    per entry with successes. Tolerant of wrong types, which parsing reports later."""
    total = 0
    for item in data:
        if not isinstance(item, dict):
            continue
        for key, _, _ in _SECTIONS:
            entries = item.get(key)
            if isinstance(entries, list):
                total += len(entries)
        successes = item.get("successes")
        if type(successes) is int and successes > 0:
            total += 1
    return total


def _entry(
    entry: Any, path: str, kind: str, suppressed: bool, errors: ErrorCollector
) -> Finding | None:
    if not isinstance(entry, dict):
        errors.add(path, f"must be an object, got {describe(entry)}")
        return None
    msg = entry.get("msg")
    if not isinstance(msg, str):
        errors.add(
            f"{path}.msg",
            "is required" if msg is None else f"must be a string, got {describe(msg)}",
        )
        return None
    metadata = entry.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        errors.add(f"{path}.metadata", f"must be an object, got {describe(metadata)}")
        return None

    prefix_id, msg = split_rule_prefix(msg)
    rule_id = metadata_rule_id(metadata) or prefix_id

    line = None
    loc = entry.get("loc")
    if isinstance(loc, dict):
        loc_line = loc.get("line")
        if type(loc_line) is int and 1 <= loc_line <= MAX_LINE:
            line = loc_line

    if len(msg) > MAX_MESSAGE_LENGTH:
        msg = msg[:MAX_MESSAGE_LENGTH]
    context = {"conftest": kind, "metadata": metadata}
    return Finding(VIOLATION, rule_id, "", "", line, msg, context, suppressed)


def metadata_rule_id(metadata: dict[str, Any]) -> str | None:
    """`metadata.rule_id`, else `metadata.rule`, else `metadata.id`, each only if it looks like
    a catalog id: a policy's own ids ("K8S-001") are left to the namespace mapping."""
    for key in _METADATA_ID_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and is_catalog_id(value):
            return value
    return None


def split_rule_prefix(msg: str) -> tuple[str | None, str]:
    """Take a leading `R07:`, `R07 -` or `[R07]` off a message: (rule id or None, message)."""
    text = msg.lstrip()
    if len(text) < 4:
        return None, msg
    if text[0] == "[":
        if len(text) >= 5 and text[4] == "]" and is_catalog_id(text[1:4]):
            return text[1:4], text[5:].lstrip()
        return None, msg
    if not is_catalog_id(text[:3]):
        return None, msg
    rest = text[3:]
    if rest[0] == ":":
        return text[:3], rest[1:].lstrip()
    if rest[0] in " \t":
        after = rest.lstrip(" \t")
        if after[:1] in ("-", "\u2013", "\u2014"):  # hyphen, en dash, em dash
            return text[:3], after[1:].lstrip()
    return None, msg
