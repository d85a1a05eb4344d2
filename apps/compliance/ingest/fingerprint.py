"""Stable identity of a finding across runs, so a known violation is recognised after the code
around it moves. The line number is not an input, and line/column references inside the
message are removed; other digits stay, so "CVE-2024-1234" and "CVE-2024-5678" differ."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from .findings import normalize_path

# Applied in this order, before lowercasing (the "L12" form is case-sensitive).
_LINE_REFERENCES = (
    # "app/settings.py:12:5" -> "app/settings.py" (a file name with an extension)
    (re.compile(r"(\b[\w./-]*\.[A-Za-z][A-Za-z0-9]{0,9}):\d+(?::\d+)?\b", re.ASCII), r"\1"),
    # "line 12", "lines 3-5", "line: 12", "lines 3 to 5", "column 7", "col 7"
    (
        re.compile(
            r"\b(lines?|columns?|cols?)\s*:?\s*\d+(?:\s*(?:-|\u2013|to)\s*\d+)?\b",
            re.ASCII | re.IGNORECASE,
        ),
        r"\1",
    ),
    # "L12", "L12-L15", "L12C5" (GitHub-style anchors)
    (re.compile(r"\bL\d+(?:C\d+)?(?:-L?\d+(?:C\d+)?)?\b", re.ASCII), ""),
    # "(12:5)", "[12:5]"
    (re.compile(r"[(\[]\s*\d+\s*:\s*\d+\s*[)\]]", re.ASCII), ""),
)
_WHITESPACE = re.compile(r"\s+")


@lru_cache(maxsize=65_536)
def normalize_message(message: str) -> str:
    """Lowercased, whitespace collapsed, line and column references removed."""
    if any(c.isdigit() for c in message):
        for pattern, replacement in _LINE_REFERENCES:
            message = pattern.sub(replacement, message)
    return _WHITESPACE.sub(" ", message.lower()).strip()


def fingerprint(rule_id: str, file_path: str, message: str) -> str:
    """sha256 of rule, normalized path and normalized message; 40 hex characters."""
    text = f"{rule_id}\x1f{normalize_path(file_path)}\x1f{normalize_message(message)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]
