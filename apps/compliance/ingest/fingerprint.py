"""Stable identity of a finding across runs, so a known violation is recognised after the code
around it moves. The line number is not an input, and line/column references inside the
message are removed; other digits stay, so "CVE-2024-1234" and "CVE-2024-5678" differ."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from .findings import normalize_path

_DIGIT = re.compile(r"\d", re.ASCII)
# ":12" or ":12:5" right after a file name with an extension ("app/settings.py:12:5"); the file
# name is checked in _drop_file_position so that the pattern can start with a literal.
_FILE_POSITION = re.compile(r":\d+(?::\d+)?\b", re.ASCII)
# "(12:5)", "[12:5]"
_BRACKETED_POSITION = re.compile(r"[(\[]\s*\d+\s*:\s*\d+\s*[)\]]", re.ASCII)
# "L12", "L12-L15", "L12C5" (GitHub-style anchors); case-sensitive, so applied before lowercasing
_LINE_ANCHOR = re.compile(r"L(?<=\bL)\d+(?:C\d+)?(?:-L?\d+(?:C\d+)?)?\b", re.ASCII)
# On lowercased text: "line 12", "lines 3-5", "line: 12", "lines 3 to 5" -> "line";
# "column 7", "col 7" -> "col". Each starts with a literal so that the scan is quick.
_RANGE = r"\s*:?\s*\d+(?:\s*(?:-|\u2013|to)\s*\d+)?\b"
_LINE_WORD = re.compile(r"line(?<=\bline)s?" + _RANGE, re.ASCII)
_COLUMN_WORD = re.compile(r"col(?<=\bcol)(?:umn)?s?" + _RANGE, re.ASCII)


def _drop_file_position(match: re.Match[str]) -> str:
    head = match.string[max(0, match.start() - 11) : match.start()]
    dot = head.rfind(".")
    extension = head[dot + 1 :]
    if dot >= 0 and extension.isascii() and extension.isalnum() and extension[:1].isalpha():
        return ""
    return match.group(0)


@lru_cache(maxsize=65_536)
def normalize_message(message: str) -> str:
    """Lowercased, whitespace collapsed, line and column references removed.

    Each pattern runs only when the message has what it needs (a digit, a colon, an "L"), since
    the caller fingerprints every finding of a run.
    """
    if _DIGIT.search(message) is None:
        return " ".join(message.lower().split())
    if ":" in message:
        message = _FILE_POSITION.sub(_drop_file_position, message)
        message = _BRACKETED_POSITION.sub("", message)
    if "L" in message:
        message = _LINE_ANCHOR.sub("", message)
    message = message.lower()
    if "line" in message:
        message = _LINE_WORD.sub("line", message)
    if "col" in message:
        message = _COLUMN_WORD.sub("col", message)
    return " ".join(message.split())


def fingerprint(rule_id: str, file_path: str, message: str) -> str:
    """sha256 of rule, normalized path and normalized message; 40 hex characters."""
    text = f"{rule_id}\x1f{normalize_path(file_path)}\x1f{normalize_message(message)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]
